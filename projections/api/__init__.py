"""The read API: FastAPI over the read models (``create_app``); served by
``lifecycle serve`` (``lifecycle.entrypoints.serve``)."""

from __future__ import annotations

from projections.api.app import ReadSide, create_app

__all__ = ["ReadSide", "create_app"]
