"""The read models' names, in the order they run: what the command line shows without
loading the read side. Their classes are ``wiring.READ_MODELS``, in the same order (a
unit test keeps the two in step)."""

from __future__ import annotations

READ_MODEL_NAMES = ("summary", "funnel", "complaints", "inquiries", "follow_ups", "purchases")
