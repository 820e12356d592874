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
- ``PostgresApplicationRecorder._lock_table`` and ``._notify_channel``: the table lock
  by which the library's ``insert_events`` makes writers of the log take turns (so that
  notification ids are committed in order), and the NOTIFY that wakes those who follow
  the log; the PostgreSQL process recorder takes them itself, then writes the events
  with ``COPY`` (``lifecycle.persistence.postgres.BatchPostgresProcessRecorder``), and
  takes the lock alone (``lock_events_table``) to check a write's condition when it
  has no events to insert.
- ``Notification`` made without its frozen dataclass's ``__init__``: a page of the log
  read in half the time (``lifecycle.persistence.recorders.BulkSQLiteProcessRecorder``).
- A new event made without its frozen dataclass's ``__init__`` (which sets each field
  through ``object.__setattr__``: 3 µs for a recorded touchpoint), applied and appended
  to the aggregate's private ``_pending_events``, which ``collect_events`` empties:
  ``trigger_event``, what the library's ``Aggregate.trigger_event`` does, in a fifth of
  the domain's time per touchpoint less.

Hooks of the aggregate that the domain overrides on ``ChainedAggregate``
(``lifecycle.domain.streams``, the base of ``Relationship`` and of every other chained
stream; the domain imports nothing of the library but ``eventsourcing.domain``:
``tests/unit/test_layers.py`` checks), pinned by the same contract tests:

- ``Aggregate._create(event_class, *, id, **kwargs)``, which ``Relationship(...)`` calls
  to make its first event: ``ChainedAggregate._create`` adds the first link of the hash
  chain.
- ``Aggregate.trigger_event(event_class, **kwargs)``, which every ``@event`` command
  calls with the event's fields: ``ChainedAggregate.trigger_event`` chains each new
  event to the last, then hands it to the installed event trigger: the library's
  ``trigger_event``, or ``trigger_event`` here, which the application installs.
- The ``originator_topic`` the library adds to a "created" event, which the first hash
  covers: the domain computes it as ``f"{cls.__module__}:{cls.__qualname__}"``, which
  must equal ``eventsourcing.utils.get_topic(Relationship)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification, Tracking, TrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder

if TYPE_CHECKING:  # only a PostgreSQL store loads psycopg
    from eventsourcing.postgres import PostgresApplicationRecorder


def insert_tracking(recorder: TrackingRecorder, cursor: Any, tracking: Tracking) -> None:
    """Record ``tracking`` in the transaction ``cursor`` of ``recorder`` (a SQLite or
    PostgreSQL tracking recorder) belongs to; an ``IntegrityError`` when that position
    is recorded already."""
    if not isinstance(recorder, SQLiteTrackingRecorder):
        from eventsourcing.postgres import PostgresTrackingRecorder

        if not isinstance(recorder, PostgresTrackingRecorder):
            raise TypeError(f"no tracking in an open transaction on {recorder!r}")
    recorder._insert_tracking(cursor, tracking)


def lock_log(recorder: PostgresApplicationRecorder, cursor: Any) -> None:
    """What the library's ``insert_events`` does before it inserts events, in the
    transaction ``cursor`` belongs to: the table lock every writer of the log takes
    (``LOCK TABLE … IN EXCLUSIVE MODE``, with the datastore's lock timeout), held until
    the transaction ends, then NOTIFY on the log's channel."""
    recorder._lock_table(cursor)
    recorder._notify_channel(cursor)


def lock_events_table(recorder: PostgresApplicationRecorder, cursor: Any) -> None:
    """Take the lock every PostgreSQL insert of events takes (the library's
    ``_lock_table``), in the transaction ``cursor`` belongs to: until it ends no other
    writer commits an event, so what it reads stays the latest."""
    recorder._lock_table(cursor)


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


def trigger_event(aggregate: Aggregate, event_class: type[Any], state: dict[str, Any]) -> None:
    """What ``Aggregate.trigger_event(event_class, **state)`` does (an
    ``lifecycle.domain.streams.EventTrigger``): the next event of ``aggregate``, with
    ``state`` and the originator's id and next version, applied and kept pending. Made
    the way the library's mapper makes a stored event, its fields set at once in their
    order; when ``state`` does not hold exactly the class's fields, the library's own
    ``trigger_event`` makes it, and says what is wrong."""
    state["originator_id"] = aggregate.id
    state["originator_version"] = aggregate.version + 1
    names = _init_fields(event_class)
    if len(state) != len(names) or not state.keys() >= names.keys():
        Aggregate.trigger_event(aggregate, event_class, **state)
        return
    new_event = object.__new__(event_class)
    object.__setattr__(new_event, "__dict__", {name: state[name] for name in names})
    new_event.mutate(aggregate)
    aggregate._pending_events.append(new_event)


_INIT_FIELDS: dict[type[Any], dict[str, None]] = {}


def _init_fields(event_class: type[Any]) -> dict[str, None]:
    """The names of the fields an event class's ``__init__`` sets, in its order (a dict:
    ordered, with set operations on its keys)."""
    names = _INIT_FIELDS.get(event_class)
    if names is None:
        names = dict.fromkeys(field.name for field in fields(event_class) if field.init)
        _INIT_FIELDS[event_class] = names
    return names
