"""Prometheus metrics of the read side, on the default registry (``/metrics`` serves that
registry, so the ingest and dead-letter counters of ``consumers`` appear beside these
when they run in the same process).

Gauges are ``mostrecent`` in prometheus_client's multiprocess mode (the API with several
workers): every process may set them, and the latest value is the true one.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PROJECTION_POSITION = Gauge(
    "lifecycle_projection_position",
    "Last notification id of the event log a read model has committed",
    ["projection"],
    multiprocess_mode="mostrecent",
)
PROJECTION_LAG = Gauge(
    "lifecycle_projection_lag_events",
    "Events recorded in the log that a read model has not committed yet",
    ["projection"],
    multiprocess_mode="mostrecent",
)
PROJECTION_EVENTS = Counter(
    "lifecycle_projection_events",
    "Events folded into a read model and committed by this process",
    ["projection"],
)
EVENT_LOG_HEAD = Gauge(
    "lifecycle_event_log_head",
    "Highest notification id of the application's event log (events recorded)",
    multiprocess_mode="mostrecent",
)
REQUEST_SECONDS = Histogram(
    "lifecycle_api_request_seconds",
    "Time to answer an HTTP request of the read API",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
