"""Analytical CRM (Contract 8): the BG/NBD and Gamma-Gamma models of customer-base
analysis, fitted to the purchase pattern of every customer, and their predictions.

``btyd`` is the models' mathematics (numpy and scipy, nothing else); ``service`` turns
purchase days into the models' inputs, fits, predicts and validates. Both are imported
only by the commands and routes that use them: numpy and scipy are slow to import (this
module imports nothing, so that the command's parser can name the defaults).
"""

DEFAULT_PERIOD_DAYS = 7
"""Recency and T in weeks, as in the papers."""
DEFAULT_HORIZON_DAYS = 90
DEFAULT_MONTHLY_DISCOUNT = 0.01
