"""The read API's routes: one router per OpenAPI tag, each in its module, included by
``projections.api.app.create_app``."""

from __future__ import annotations

from projections.api.paths import register_segment_convertor

# The routers compile their paths as their modules are imported, and the customer
# routes' paths use the ``segment`` convertor: known before any of them is imported.
register_segment_convertor()
