"""The one door to private APIs of eventsourcing (pinned at 9.5.6).

Each is used only where the public surface does not reach, and each is pinned by a
contract test (``tests/unit/test_library_contracts.py``,
``tests/integration/test_library_contracts.py``), so that an upgrade that changes one
fails there, naming it, rather than somewhere downstream.

Used here:

- ``SQLiteTrackingRecorder._insert_tracking(c, tracking)`` and
  ``PostgresTrackingRecorder._insert_tracking(curs, tracking)``: a position recorded in
  a transaction already open, with the rows it covers (the public ``insert_tracking``
  opens a transaction of its own). The SQLite process recorder, the read models' views
  and the audit ledger record their positions through ``insert_tracking``.
- ``PostgresProcessRecorder._insert_events``, ``._insert_stored_events`` and
  ``._fetch_ids_after_insert_events``: the steps of the library's ``insert_events``
  (tracking row; table lock, NOTIFY, the one multi-row INSERT; its notification ids),
  run in a plain transaction rather than in pipeline mode
  (``lifecycle.persistence.recorders.BatchPostgresProcessRecorder``).
- ``Notification`` made without its frozen dataclass's ``__init__``: a page of the log
  read in half the time (``lifecycle.persistence.recorders.BulkSQLiteProcessRecorder``).

Hooks of the aggregate that the domain overrides on ``ChainedAggregate``
(``lifecycle.domain.streams``, the base of ``Relationship`` and of every other chained
stream; the domain imports nothing of the library but ``eventsourcing.domain``:
``tests/unit/test_layers.py`` checks), pinned by the same contract tests:

- ``Aggregate._create(event_class, *, id, **kwargs)``, which ``Relationship(...)`` calls
  to make its first event: ``ChainedAggregate._create`` adds the first link of the hash
  chain.
- ``Aggregate.trigger_event(event_class, **kwargs)``, which every ``@event`` command
  calls with the event's fields: ``ChainedAggregate.trigger_event`` chains each new
  event to the last.
- The ``originator_topic`` the library adds to a "created" event, which the first hash
  covers: the domain computes it as ``f"{cls.__module__}:{cls.__qualname__}"``, which
  must equal ``eventsourcing.utils.get_topic(Relationship)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent, Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresProcessRecorder, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder


def insert_tracking(recorder: TrackingRecorder, cursor: Any, tracking: Tracking) -> None:
    """Record ``tracking`` in the transaction ``cursor`` of ``recorder`` (a SQLite or
    PostgreSQL tracking recorder) belongs to; an ``IntegrityError`` when that position
    is recorded already."""
    if not isinstance(recorder, SQLiteTrackingRecorder | PostgresTrackingRecorder):
        raise TypeError(f"no tracking in an open transaction on {recorder!r}")
    recorder._insert_tracking(cursor, tracking)


def insert_in_plain_transaction(
    recorder: PostgresProcessRecorder,
    cursor: Any,
    stored_events: Sequence[StoredEvent],
    **kwargs: Any,
) -> Sequence[int] | None:
    """What the library's ``PostgresProcessRecorder.insert_events`` does inside its
    pipeline, in the transaction ``cursor`` belongs to: the tracking row (``tracking=``
    in ``kwargs``), then the table lock, NOTIFY and the one multi-row INSERT, then the
    new events' notification ids (None when there were none)."""
    recorder._insert_events(cursor, stored_events, **kwargs)
    if not stored_events:
        return None
    recorder._insert_stored_events(cursor, stored_events, **kwargs)
    return recorder._fetch_ids_after_insert_events(cursor, stored_events, **kwargs)


def notifications(
    rows: Iterable[tuple[int, str, int, str, bytes]],
    convert_originator_id: Callable[[str], UUID | str],
) -> list[Notification]:
    """``Notification`` objects of rows of the events table (notification id, originator
    id as stored, version, topic, state), made the way the library's mapper makes
    events: their fields set at once, without the frozen dataclass's ``__init__`` (which
    sets each through ``object.__setattr__``)."""
    made = []
    new = object.__new__
    set_fields = object.__setattr__
    for notification_id, originator_id, originator_version, topic, state in rows:
        notification = new(Notification)
        set_fields(
            notification,
            "__dict__",
            {
                "originator_id": convert_originator_id(originator_id),
                "originator_version": originator_version,
                "topic": topic,
                "state": state,
                "id": notification_id,
            },
        )
        made.append(notification)
    return made
