"""The Kafka clients of the edge, configured in one place.

Producers wait for every in-sync replica (``acks="all"``) and are idempotent, so a
retried send is neither duplicated nor reordered by the broker. Consumers never
auto-commit: the positions that count are stored with the events. Group timings are
short so that a member joins or leaves in seconds (with the defaults a join takes
~25 s). A member that does not poll for ``MAX_POLL_INTERVAL_MS`` leaves its group and
rejoins on its next poll; a consumer waiting for its database polls between attempts
(with its partitions paused), so that only an attempt longer than that makes it leave.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Self, TypeVar

from kafka import KafkaConsumer, KafkaProducer

from consumers.faults import is_broker_fault
from lifecycle.faults import Backoff, retry

SESSION_TIMEOUT_MS = 6_000
HEARTBEAT_INTERVAL_MS = 2_000
MAX_POLL_INTERVAL_MS = 60_000
BOOTSTRAP_TIMEOUT_MS = 5_000
RECONNECT_BACKOFF_MAX_MS = 5_000  # kafka-python's own reconnects back off exponentially to this
CONNECT_BACKOFF = Backoff(initial=0.5, maximum=30.0)

Client = TypeVar("Client", KafkaProducer, KafkaConsumer)


def new_producer(bootstrap: str, client_id: str, **options: Any) -> KafkaProducer:
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        **options,
    }
    return KafkaProducer(**config)


def new_consumer(bootstrap: str, client_id: str, **options: Any) -> KafkaConsumer:
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        **options,
    }
    return KafkaConsumer(**config)


def connect_producer(
    bootstrap: str, client_id: str, stop: threading.Event, log: Any, **options: Any
) -> KafkaProducer:
    """A producer, once the broker answers; waits it out with backoff. Raises ``Stopped``."""
    return _once_answered(
        lambda: new_producer(bootstrap, client_id, **options), bootstrap, stop, log
    )


def connect_consumer(
    bootstrap: str, client_id: str, stop: threading.Event, log: Any, **options: Any
) -> KafkaConsumer:
    """A consumer, once the broker answers; waits it out with backoff. Raises ``Stopped``."""
    return _once_answered(
        lambda: new_consumer(bootstrap, client_id, **options), bootstrap, stop, log
    )


def _once_answered(
    new: Callable[[], Client], bootstrap: str, stop: threading.Event, log: Any
) -> Client:
    return retry(
        new,
        is_fault=is_broker_fault,
        cause="broker",
        stop=stop,
        log=log.bind(bootstrap=bootstrap),
        backoff=CONNECT_BACKOFF,
    )


class ClosedOnExit(ABC):
    """An edge worker (ingest, relay) that a ``with`` block closes on leaving it."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
