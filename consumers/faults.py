"""Transient faults of the Kafka edge, and how it waits them out.

A transient fault is one that goes away by itself: the broker or the database is
unreachable for a while, or another writer won a race. The edge retries the same
operation with capped exponential backoff, logging each wait, and never moves past the
work it could not do. Anything else is a bug or a misconfiguration and is raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from eventsourcing.persistence import InterfaceError, OperationalError
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from lifecycle.service.application import ConcurrencyConflict

T = TypeVar("T")

DATABASE_FAULTS: tuple[type[Exception], ...] = (
    InterfaceError,
    OperationalError,  # also a connection pool timeout, a lock timeout
    ConcurrencyConflict,
)


class Stopped(Exception):
    """A stop was requested while waiting out a fault: the operation was not done."""


def is_database_fault(error: BaseException) -> bool:
    return isinstance(error, DATABASE_FAULTS)


def is_broker_fault(error: BaseException) -> bool:
    """A Kafka error worth retrying: the broker is away, slow, or moving leadership."""
    if isinstance(error, KafkaTimeoutError | KafkaConnectionError):
        return True
    return isinstance(error, KafkaError) and bool(getattr(error, "retriable", False))


@dataclass(frozen=True)
class Backoff:
    """Capped exponential delays: initial, initial*factor, … up to maximum seconds."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        return float(min(self.maximum, self.initial * self.factor ** min(attempt, 32)))


DEFAULT_BACKOFF = Backoff()


def retry(
    operation: Callable[[], T],
    *,
    is_fault: Callable[[BaseException], bool],
    cause: str,
    stop: threading.Event,
    log: Any,
    backoff: Backoff = DEFAULT_BACKOFF,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """``operation()``, repeated after each transient fault until it succeeds.

    ``cause`` names what failed (``broker``, ``database``) in the log lines
    ``<cause>_unavailable`` and ``<cause>_available_again``. Raises ``Stopped`` if
    ``stop`` is set while waiting; any other error propagates at once.
    """
    attempt = 0
    while True:
        try:
            result = operation()
        except Exception as error:
            if not is_fault(error):
                raise
            delay = backoff.delay(attempt)
            attempt += 1
            log.warning(
                f"{cause}_unavailable",
                error=f"{type(error).__name__}: {error}",
                attempt=attempt,
                retry_in_seconds=delay,
            )
            if on_retry is not None:
                on_retry()
            if stop.wait(delay):
                raise Stopped(f"stopped while the {cause} was unavailable") from error
            continue
        if attempt:
            log.info(f"{cause}_available_again", attempts=attempt)
        return result
