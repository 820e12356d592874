"""The domain: what a relationship is and how it moves through its stages.

Pure: imports only the standard library, pydantic and ``eventsourcing.domain``
(``tests/unit/test_layers.py`` checks it). No store, broker, web or logging here.
"""
