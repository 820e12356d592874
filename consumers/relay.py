"""The outbound relay: the application's event log to ``crm.relationship-events``.

Each recorded event becomes a Contract 3 message (``to_relationship_event``) keyed by
``customer_id``, with the headers ``event_type``, ``event_id`` and ``schema_version``.
The event id is derived from the relationship id and version, so it is the same on
every delivery. The relay publishes version 2 of Contract 3, or version 1 for consumers
that have not upgraded (``LIFECYCLE_RELAY_SCHEMA_VERSION=1``).

Delivery policy: at least once, in log order per customer. The relay reads the log in
notification order, publishes a batch through one idempotent producer with one request
in flight, waits for the broker to acknowledge all of it, and only then stores its
position (``Tracking("Lifecycle", last notification id)``) in a tracking recorder of its
own (``lifecycle.relay.db`` beside a SQLite store; the ``lifecyclerelay_tracking`` table
on PostgreSQL). After a crash it publishes again from the stored position: a downstream
consumer may see an event twice, never out of order, and de-duplicates by ``event_id``.

Error policy: an unreachable broker or database is waited out with capped exponential
backoff (the whole batch is sent again; the position is not moved); a stop request
ends the relay between batches, or during a wait without moving the position.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import structlog
from eventsourcing.persistence import (
    IntegrityError,
    Notification,
    Tracking,
    TrackingRecorder,
)
from kafka import KafkaProducer

from consumers import metrics
from consumers.clients import ClosedOnExit, connect_producer
from consumers.faults import is_broker_fault, is_database_fault
from lifecycle.domain.outbound import RelationshipEventV1, to_relationship_event
from lifecycle.faults import Backoff, Stopped, retry
from lifecycle.service.application import RELATIONSHIP_TOPICS, LifecycleApplication

log = structlog.get_logger(__name__)

T = TypeVar("T")

ACK_TIMEOUT_SECONDS = 30.0
BACKOFF = Backoff(initial=0.5, maximum=30.0)


class Relay(ClosedOnExit):
    """Publishes every recorded event once it is in the log (see the module doc)."""

    def __init__(
        self,
        app: LifecycleApplication,
        tracking: TrackingRecorder,
        *,
        bootstrap: str,
        topic: str,
        batch_size: int = 1_000,
        idle_seconds: float = 0.5,
        schema_version: int = 2,
        relay_metrics: metrics.RelayMetrics = metrics.RELAY,
    ) -> None:
        self.app = app
        self.schema_version = schema_version
        """The version of Contract 3 published."""
        self.tracking = tracking
        self.bootstrap = bootstrap
        self.topic = topic
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.metrics = relay_metrics
        self.published = 0
        self.log = log.bind(topic=topic)
        self._producer: KafkaProducer | None = None
        self._position: int | None = None

    @property
    def name(self) -> str:
        """The tracking name: the application whose log is relayed."""
        return self.app.name

    def position(self) -> int:
        """The notification id of the last event relayed and acknowledged (0: none)."""
        return self.tracking.max_tracking_id(self.name) or 0

    def open(self, stop: threading.Event) -> Relay:
        """Connect to the broker, waiting for it. Raises ``Stopped``."""
        # One request in flight and idempotence: a retried send cannot overtake the next.
        self._producer = connect_producer(
            self.bootstrap,
            "lifecycle-relay",
            stop,
            self.log,
            max_in_flight_requests_per_connection=1,
        )
        self.log.info("relay_started", bootstrap=self.bootstrap)
        return self

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close()
            self.log.info("relay_stopped", published=self.published, position=self._position)

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set, polling the log when it has nothing new."""
        try:
            self.open(stop)
            while not stop.is_set():
                if self.relay_batch(stop) == 0:
                    stop.wait(self.idle_seconds)
        except Stopped:
            self.log.info("relay_stopping_during_retry")
        finally:
            self.close()

    def relay_available(self, stop: threading.Event) -> int:
        """Relay everything recorded so far; the number of events published."""
        total = 0
        while count := self.relay_batch(stop):
            total += count
        return total

    def relay_batch(self, stop: threading.Event) -> int:
        """Publish the next batch of the log and store the position after it."""
        if self._position is None:
            self._position = self._retry_database(self.position, stop)
        start = self._position + 1
        notifications = self._retry_database(
            lambda: self.app.recorder.select_notifications(
                start, self.batch_size, topics=RELATIONSHIP_TOPICS
            ),
            stop,
        )
        if not notifications:
            return 0
        events = [self._outbound(notification) for notification in notifications]
        self._retrying(lambda: self._publish(events), stop, is_broker_fault, "broker")
        last = notifications[-1].id
        self._retry_database(lambda: self._store_position(last), stop)
        self._position = last
        self.published += len(events)
        self.metrics.published.labels(self.topic).inc(len(events))
        self.metrics.position.set(last)
        self.log.info("events_relayed", count=len(events), first=notifications[0].id, position=last)
        return len(events)

    def _outbound(self, notification: Notification) -> tuple[bytes, RelationshipEventV1]:
        """The message's key (the customer: only relationships are relayed) and value."""
        event = to_relationship_event(self.app.mapper.to_domain_event(notification))
        assert event.customer_id is not None
        if self.schema_version == 1:
            return event.customer_id.encode(), event.as_version_1()
        return event.customer_id.encode(), event

    def _publish(self, events: list[tuple[bytes, RelationshipEventV1]]) -> None:
        """Send the batch and wait for every acknowledgement; raise the first failure."""
        assert self._producer is not None
        version = str(self.schema_version).encode()
        futures = [
            self._producer.send(
                self.topic,
                key=key,
                value=event.model_dump_json().encode(),
                headers=[
                    ("event_type", event.type.encode()),
                    ("event_id", str(event.event_id).encode()),
                    ("schema_version", version),
                ],
            )
            for key, event in events
        ]
        self._producer.flush(timeout=ACK_TIMEOUT_SECONDS)
        for future in futures:
            future.get(timeout=ACK_TIMEOUT_SECONDS)

    def _store_position(self, notification_id: int) -> None:
        try:
            self.tracking.insert_tracking(Tracking(self.name, notification_id))
        except IntegrityError:
            # Stored by an attempt whose acknowledgement was lost, or by another relay.
            if not self.tracking.has_tracking_id(self.name, notification_id):
                raise

    def _retry_database(self, operation: Callable[[], T], stop: threading.Event) -> T:
        return self._retrying(operation, stop, is_database_fault, "database")

    def _retrying(
        self,
        operation: Callable[[], T],
        stop: threading.Event,
        is_fault: Callable[[BaseException], bool],
        cause: str,
    ) -> T:
        """``operation``, retried with backoff while its errors are ``is_fault`` (the
        ``cause``'s), each retry counted under that cause."""
        return retry(
            operation,
            is_fault=is_fault,
            cause=cause,
            stop=stop,
            log=self.log,
            backoff=BACKOFF,
            on_retry=lambda: self.metrics.retries.labels(cause).inc(),
        )
