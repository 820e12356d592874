"""Which faults of the Kafka edge are transient: waited out by ``lifecycle.faults.retry``
(capped exponential backoff, a log line per wait, never moving past the work it could
not do). Anything else is a bug or a misconfiguration and is raised."""

from __future__ import annotations

from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from lifecycle import faults
from lifecycle.service.application import ConcurrencyConflict


def is_database_fault(error: BaseException) -> bool:
    """The database is away or busy, or another writer kept winning the race for the
    same relationships (trying again records the batch)."""
    return faults.is_database_fault(error) or isinstance(error, ConcurrencyConflict)


def is_broker_fault(error: BaseException) -> bool:
    """A Kafka error worth retrying: the broker is away, slow, or moving leadership."""
    if isinstance(error, KafkaTimeoutError | KafkaConnectionError):
        return True
    return isinstance(error, KafkaError) and bool(getattr(error, "retriable", False))
