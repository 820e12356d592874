"""The read API's routes: one router per OpenAPI tag, each in its module, included by
``projections.api.app.create_app``.

Where a route runs: a route whose work is bounded by the request (one customer, one
page, tables summed over customers) is ``async def`` and reads on the event loop; work
that may read a large part of a table (the case figures at a new position) goes to the
thread pool, so that it does not stall every other request of its worker. A hop to the
thread pool and back costs about a third of a millisecond of CPU, more than the work of
a summary, and, under concurrent load, hands the interpreter's lock between threads on
two cores (docs/benchmarks.md). On PostgreSQL a read on the loop waits out its round
trips there (a few, well under a millisecond each on a local network): concurrent
requests are served by workers."""

from __future__ import annotations

from projections.api.paths import register_segment_convertor

# The routers compile their paths as their modules are imported, and the customer
# routes' paths use the ``segment`` convertor: known before any of them is imported.
register_segment_convertor()
