"""Prometheus counters and gauges of the Kafka edge, in ``REGISTRY``.

The read-side API exposes ``REGISTRY`` at ``/metrics`` (``prometheus_client.generate_latest
(REGISTRY)``). The metrics are process-wide: several consumers in one process add to
the same counters. Creating them registers names in memory only; nothing is served here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)


class IngestMetrics:
    """What the touchpoint consumer did: messages, outcomes, positions, lag, retries."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "lifecycle_ingest_messages",
            "Messages taken from the touchpoint topic and settled (recorded, duplicate or "
            "dead-lettered)",
            ["topic"],
            registry=registry,
        )
        self.recorded = Counter(
            "lifecycle_ingest_touchpoints_recorded",
            "Touchpoints recorded as new events",
            ["topic"],
            registry=registry,
        )
        self.duplicates = Counter(
            "lifecycle_ingest_duplicates",
            "Valid touchpoints whose (customer_id, event_id) was recorded before",
            ["topic"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "lifecycle_ingest_dead_letters",
            "Invalid messages sent to the dead-letter topic, by error code",
            ["topic", "error_code"],
            registry=registry,
        )
        self.stage_changes = Counter(
            "lifecycle_ingest_stage_changes",
            "Stage changes caused by consumed touchpoints, by rule",
            ["rule"],
            registry=registry,
        )
        self.batches = Counter(
            "lifecycle_ingest_batches",
            "Polls whose messages were all settled",
            ["topic"],
            registry=registry,
        )
        self.position = Gauge(
            "lifecycle_ingest_position",
            "Next offset to record, per partition, as stored with the events",
            ["topic", "partition"],
            registry=registry,
        )
        self.lag = Gauge(
            "lifecycle_ingest_lag",
            "Messages behind the partition's high watermark",
            ["topic", "partition"],
            registry=registry,
        )
        self.retries = Counter(
            "lifecycle_ingest_retries",
            "Retries after a transient failure, by what failed (broker, database)",
            ["cause"],
            registry=registry,
        )


class RelayMetrics:
    """What the outbound relay published and where it stands in the event log."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "lifecycle_relay_events_published",
            "Relationship events published to the outbound topic (at least once)",
            ["topic"],
            registry=registry,
        )
        self.position = Gauge(
            "lifecycle_relay_position",
            "Notification id of the last event relayed and acknowledged",
            registry=registry,
        )
        self.retries = Counter(
            "lifecycle_relay_retries",
            "Retries after a transient failure, by what failed (broker, database)",
            ["cause"],
            registry=registry,
        )


INGEST = IngestMetrics(REGISTRY)
RELAY = RelayMetrics(REGISTRY)
