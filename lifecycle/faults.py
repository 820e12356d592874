"""Transient faults, and the one way the engine waits them out: ``retry``.

A transient fault is one that goes away by itself: the database or the broker is
unreachable for a while, or busy. ``retry`` repeats the same operation with capped
exponential backoff, logging each wait, and never moves past work it could not do;
anything that is not a fault is raised at once. ``is_database_fault`` says which errors
of the database are faults (``consumers.faults`` adds the Kafka edge's); the Kafka edge,
the read models' runner and the PostgreSQL recorder all wait through ``retry``.

Why not ``eventsourcing.utils.retry``: that decorator waits a fixed time (with jitter)
between a bounded number of attempts, chosen by exception class. It cannot be stopped
while waiting (a consumer asked to stop must not sleep through an outage first), does
not log, does not back off, and gives up after its attempts, where the edge must wait
out an outage for as long as it lasts. What the library uses it for, a few quick
attempts at a statement, ``retry`` expresses too (``attempts``, a constant ``Backoff``).

Not retries, and not routed here: an application command that meets a version conflict
loads the relationships again and decides again at once (``LifecycleApplication``),
which is no fault to wait out; waiting for a process started here to listen, or for
read models to catch up, is polling for a condition, with a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from eventsourcing.persistence import InterfaceError, OperationalError

T = TypeVar("T")

DATABASE_FAULTS: tuple[type[Exception], ...] = (
    InterfaceError,
    OperationalError,  # also a connection pool timeout, a lock timeout
)


def is_database_fault(error: BaseException) -> bool:
    """The database is unreachable, busy or timed out. (SQLite calls a missing table
    operational too: that one does not heal.)"""
    return isinstance(error, DATABASE_FAULTS) and "no such table" not in str(error)


class Stopped(Exception):
    """A stop was requested while waiting out a fault: the operation was not done."""


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
    log: Any,
    stop: threading.Event | None = None,
    backoff: Backoff = DEFAULT_BACKOFF,
    attempts: int | None = None,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """``operation()``, repeated after each transient fault until it succeeds.

    ``cause`` names what failed (``broker``, ``database``) in the log lines
    ``<cause>_unavailable`` and ``<cause>_available_again``. Raises ``Stopped`` if
    ``stop`` is set while waiting (without ``stop``, nothing interrupts a wait); after
    ``attempts`` attempts (None: no limit), the last fault. Any other error propagates
    at once.
    """
    attempt = 0
    while True:
        try:
            result = operation()
        except Exception as error:
            if not is_fault(error):
                raise
            attempt += 1
            if attempts is not None and attempt >= attempts:
                raise
            delay = backoff.delay(attempt - 1)
            log.warning(
                f"{cause}_unavailable",
                error=f"{type(error).__name__}: {error}",
                attempt=attempt,
                retry_in_seconds=delay,
            )
            if on_retry is not None:
                on_retry()
            if stop is None:
                time.sleep(delay)
            elif stop.wait(delay):
                raise Stopped(f"stopped while the {cause} was unavailable") from error
            continue
        if attempt:
            log.info(f"{cause}_available_again", attempts=attempt)
        return result
