"""The read API: FastAPI over the read models, served by uvicorn (``lifecycle serve``)."""

from __future__ import annotations

from projections.api.app import ReadSide, create_app
from projections.api.server import build_app, build_read_side, serve_api

__all__ = ["ReadSide", "build_app", "build_read_side", "create_app", "serve_api"]
