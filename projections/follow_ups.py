"""Follow-ups due: the tasks the service side owes its customers.

- thank-you call: due 2 days after each purchase, done once a ``follow_up`` touchpoint
  occurred at or after the purchase;
- satisfaction check: due 7 days after a complaint is resolved, done once a ``survey``
  or ``follow_up`` occurred at or after the resolution;
- anniversary of the relationship's start (``started_at``), every year; a start on
  29 February is remembered on 28 February in other years.

"Done" compares occurrence times, not arrival order, so a follow-up recorded late still
closes the tasks before it. Dissolved relationships owe nothing: their tasks and
anniversaries are not listed (they reappear if the relationship is reactivated).
"""

from __future__ import annotations

import calendar
import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking

from lifecycle.domain.vocabulary import Kind, Stage
from projections.readmodel import (
    ReadModel,
    RelationshipStarted,
    RowCache,
    StageChanged,
    TouchpointRecorded,
)
from projections.views import SqlView, Table, backend_views

THANK_YOU_CALL = "thank_you_call"
SATISFACTION_CHECK = "satisfaction_check"
ANNIVERSARY = "anniversary"
KINDS = (THANK_YOU_CALL, SATISFACTION_CHECK, ANNIVERSARY)

THANK_YOU_WITHIN = timedelta(days=2)
SATISFACTION_AFTER = timedelta(days=7)
DUE_AFTER = {THANK_YOU_CALL: THANK_YOU_WITHIN, SATISFACTION_CHECK: SATISFACTION_AFTER}
TASKS_HELD = 50_000
"""Tasks and closings folded but not written, at most: then the batch is written."""

TaskKey = tuple[str, str, str]
"""(customer_id, kind, ref) of a task."""
MAX_ANNIVERSARY_WINDOW = timedelta(days=366)
MIDNIGHT = datetime.min.time()


class FollowUpRow:
    __slots__ = ("customer_id", "is_open", "last_check_at", "last_follow_up_at", "started_at")

    def __init__(self, customer_id: str, started_at: datetime | None) -> None:
        self.customer_id = customer_id
        self.started_at = started_at
        self.is_open = True
        self.last_follow_up_at: datetime | None = None
        self.last_check_at: datetime | None = None

    def to_db(self, view: SqlView) -> tuple[Any, ...]:
        time = view.dialect.time
        started = self.started_at.astimezone(UTC) if self.started_at else None
        return (
            self.customer_id,
            time(self.started_at),
            started.strftime("%m-%d") if started else None,
            1 if self.is_open else 0,
            time(self.last_follow_up_at),
            time(self.last_check_at),
        )

    @classmethod
    def from_db(cls, row: Any, view: SqlView) -> FollowUpRow:
        from_time = view.dialect.from_time
        self = cls(row["customer_id"], from_time(row["started_at"]))
        self.is_open = bool(row["is_open"])
        self.last_follow_up_at = from_time(row["last_follow_up_at"])
        self.last_check_at = from_time(row["last_check_at"])
        return self


@dataclass(frozen=True)
class Due:
    """One follow-up due: a task, or an anniversary (``ref`` = which one)."""

    due_at: datetime
    customer_id: str
    kind: str
    ref: str
    basis_at: datetime

    @property
    def key(self) -> tuple[datetime, str, str, str]:
        return (self.due_at, self.customer_id, self.kind, self.ref)


class FollowUpsView(SqlView):
    projection_name = "follow_ups"
    tables = (
        Table(
            "relationships",
            (
                ("customer_id", "TEXT NOT NULL"),
                ("started_at", "{time}"),
                ("start_md", "TEXT"),
                ("is_open", "BIGINT NOT NULL"),
                ("last_follow_up_at", "{time}"),
                ("last_check_at", "{time}"),
            ),
            ("customer_id",),
            indexes=(("anniversary", "start_md, customer_id"),),
        ),
        Table(
            "tasks",
            (
                ("customer_id", "TEXT NOT NULL"),
                ("kind", "TEXT NOT NULL"),
                ("ref", "TEXT NOT NULL"),
                ("basis_at", "{time} NOT NULL"),
                ("due_at", "{time} NOT NULL"),
                ("done", "BIGINT NOT NULL"),
            ),
            ("customer_id", "kind", "ref"),
            indexes=(("due", "done, due_at"),),
        ),
    )

    def rows_for(self, keys: Iterable[str]) -> list[tuple[str, FollowUpRow]]:
        return [
            (row["customer_id"], FollowUpRow.from_db(row, self))
            for row in self.load_by_keys("relationships", "customer_id", keys)
        ]

    def write_changes(
        self,
        cursor: Any,
        rows: Iterable[FollowUpRow],
        tasks: Iterable[tuple[TaskKey, datetime, bool]],
        closings: Iterable[tuple[str, str, datetime]],
    ) -> None:
        """Upsert ``rows`` and ``tasks`` ((customer_id, kind, ref), basis time, done), then
        mark done the open tasks of each (customer_id, kind) based up to a closing time."""
        time = self.dialect.time
        self.upsert(cursor, "relationships", (r.to_db(self) for r in rows))
        tasks_table = self.table("tasks")
        earlier = f"excluded.basis_at < {tasks_table}.basis_at"
        self.upsert(
            cursor,
            "tasks",
            (
                (c, kind, ref, time(basis), time(basis + DUE_AFTER[kind]), int(done))
                for (c, kind, ref), basis, done in tasks
            ),
            [
                f"basis_at = CASE WHEN {earlier} THEN excluded.basis_at "
                f"ELSE {tasks_table}.basis_at END",
                f"due_at = CASE WHEN {earlier} THEN excluded.due_at ELSE {tasks_table}.due_at END",
                f"done = CASE WHEN excluded.done > {tasks_table}.done THEN excluded.done "
                f"ELSE {tasks_table}.done END",
            ],
        )
        cursor.executemany(
            self.sql(
                "UPDATE {tasks} SET done = 1 "
                "WHERE customer_id = ? AND kind = ? AND done = 0 AND basis_at <= ?"
            ),
            [(customer_id, kind, time(up_to)) for customer_id, kind, up_to in closings],
        )

    def due(
        self,
        *,
        before: date,
        since: date,
        kinds: Sequence[str] = KINDS,
        after: tuple[datetime, str, str, str] | None = None,
        limit: int = 50,
    ) -> tuple[list[Due], int | None]:
        """Open tasks due before ``before`` (overdue ones too) and anniversaries falling
        in [since, before), in (due_at, customer_id, kind, ref) order after ``after``."""
        time = self.dialect.time
        before_at = datetime.combine(before, datetime.min.time(), UTC)
        with self._read_transaction() as cursor:
            found: list[Due] = []
            task_kinds = [k for k in kinds if k != ANNIVERSARY]
            if task_kinds:
                statement = (
                    "SELECT t.* FROM {tasks} t JOIN {relationships} r "
                    "ON r.customer_id = t.customer_id "
                    f"WHERE t.done = 0 AND r.is_open = 1 AND t.due_at < ? "
                    f"AND t.kind IN ({', '.join('?' * len(task_kinds))})"
                )
                params: list[Any] = [time(before_at), *task_kinds]
                if after is not None:
                    statement += (
                        " AND (t.due_at > ? OR (t.due_at = ? AND (t.customer_id > ? OR "
                        "(t.customer_id = ? AND (t.kind > ? OR (t.kind = ? AND t.ref > ?))))))"
                    )
                    a_due = time(after[0])
                    params += [a_due, a_due, after[1], after[1], after[2], after[2], after[3]]
                statement += " ORDER BY t.due_at, t.customer_id, t.kind, t.ref LIMIT ?"
                cursor.execute(self.sql(statement), [*params, limit])
                from_time = self.dialect.from_time
                for row in cursor.fetchall():
                    due_at, basis_at = from_time(row["due_at"]), from_time(row["basis_at"])
                    assert due_at is not None and basis_at is not None
                    found.append(Due(due_at, row["customer_id"], row["kind"], row["ref"], basis_at))
            if ANNIVERSARY in kinds:
                found.extend(self._anniversaries(cursor, since, before, after, limit))
            position = self._tracking_position(cursor, self.tracking_name)
        found.sort(key=lambda d: d.key)
        return found[:limit], position

    def _anniversaries(
        self,
        cursor: Any,
        since: date,
        before: date,
        after: tuple[datetime, str, str, str] | None,
        limit: int,
    ) -> list[Due]:
        """The first ``limit`` anniversaries falling in [since, before) after ``after``,
        in order: read along the (start_md, customer_id) index a year of the window at
        a time, so that a page costs the same however many customers there are."""
        found: list[Due] = []
        for year in range(since.year, before.year + 1):
            first, end = max(since, date(year, 1, 1)), min(before, date(year + 1, 1, 1))
            if first >= end or len(found) >= limit:
                continue
            # Month-days, which compare as text like the days they name (the end of a
            # year: past any of them).
            days = (first.strftime("%m-%d"), end.strftime("%m-%d") if end.year == year else "~")
            reads = [self._anniversary_read(cursor, year, days, after, limit)]
            if not calendar.isleap(year) and first <= date(year, 2, 28) < end:
                # Starts on 29 February come round on the 28th: beside those of the 28th.
                reads.append(self._anniversary_read(cursor, year, None, after, limit))
            found.extend(itertools.islice(heapq.merge(*reads, key=lambda d: d.key), limit))
        return found[:limit]

    def _anniversary_read(
        self,
        cursor: Any,
        year: int,
        days: tuple[str, str] | None,
        after: tuple[datetime, str, str, str] | None,
        limit: int,
    ) -> list[Due]:
        """The first ``limit`` anniversaries in ``year`` after ``after``, in order, of
        starts on the month-days in [days), or (None) of starts on 29 February in a year
        without one (they fall on the 28th)."""
        leap_day = days is None
        where = ["is_open = 1", "started_at < ?"]
        params: list[Any] = [self.dialect.time(datetime(year, 1, 1, tzinfo=UTC))]
        if days is None:
            where.append("start_md = '02-29'")
        else:
            where.append("start_md >= ? AND start_md < ?")
            params.extend(days)
            if not calendar.isleap(year):
                where.append("start_md <> '02-29'")
        if after is not None:
            at = after[0].astimezone(UTC)
            on = at.date()
            if leap_day:
                if on > date(year, 2, 28) or (on == date(year, 2, 28) and at.time() != MIDNIGHT):
                    return []
                if on == date(year, 2, 28):
                    where.append("customer_id >= ?")
                    params.append(after[1])
            elif on.year > year:
                return []
            elif on.year == year:
                # From the cursor's day on, along the index; on that very day (if the
                # cursor is at its midnight), from its customer: the rest of its key is
                # compared below.
                if at.time() == MIDNIGHT:
                    where.append("(start_md > ? OR (start_md = ? AND customer_id >= ?))")
                    params.extend([on.strftime("%m-%d"), on.strftime("%m-%d"), after[1]])
                else:
                    where.append("start_md > ?")
                    params.append(on.strftime("%m-%d"))
        cursor.execute(
            self.sql(
                "SELECT customer_id, started_at FROM {relationships} "
                f"WHERE {' AND '.join(where)} ORDER BY start_md, customer_id LIMIT ?"
            ),
            [*params, limit + 1],
        )
        found = []
        for row in cursor.fetchall():
            started_at = self.dialect.from_time(row["started_at"])
            assert started_at is not None
            due = Due(
                datetime.combine(anniversary_in(started_at.date(), year), MIDNIGHT, UTC),
                row["customer_id"],
                ANNIVERSARY,
                str(year - started_at.year),
                started_at,
            )
            if after is None or due.key > after:
                found.append(due)
        return found


def anniversary_in(start: date, year: int) -> date:
    """The day ``start`` comes round in ``year`` (29 February: the 28th in other years)."""
    if start.month == 2 and start.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return start.replace(year=year)


class FollowUps(ReadModel[FollowUpsView]):
    """Projects follow-ups due."""

    name = "follow_ups"
    description = "follow-ups due"
    view_classes = backend_views(FollowUpsView)
    touchpoint_kinds = frozenset(
        {
            Kind.PURCHASE.value,
            Kind.COMPLAINT_RESOLVED.value,
            Kind.FOLLOW_UP.value,
            Kind.SURVEY.value,
        }
    )

    _KINDS = touchpoint_kinds

    def reset(self) -> None:
        super().reset()
        self.cache: RowCache[FollowUpRow] = self.row_cache(self.view.rows_for)
        self.tasks: dict[TaskKey, datetime] = {}
        """Tasks folded, by key, with the earliest time they were based on."""
        self.closings: dict[tuple[str, str], datetime] = {}

    def prefetch(self, events: Sequence[Any]) -> None:
        if self.cache.complete:
            return
        kinds = self._KINDS
        self.cache.prefetch(
            {e.customer_id for e in events if type(e) is not TouchpointRecorded or e.kind in kinds}
        )

    def _row(self, customer_id: str) -> FollowUpRow:
        """The customer's row, to be changed: it is written with the batch."""
        row = self.cache.get(customer_id)
        if row is None:
            row = FollowUpRow(customer_id, None)
        self.cache.put(customer_id, row)
        return row

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events of other classes owe no follow-up."""

    @process_event.register(RelationshipStarted)
    def _started(self, domain_event: Any, tracking: Tracking) -> None:
        self._row(domain_event.customer_id).started_at = domain_event.started_at

    @process_event.register(StageChanged)
    def _stage_changed(self, domain_event: Any, tracking: Tracking) -> None:
        customer_id: str = domain_event.customer_id
        is_open = domain_event.to_stage != Stage.DISSOLUTION
        row = self.cache.get(customer_id)
        if row is None or row.is_open != is_open:
            self._row(customer_id).is_open = is_open

    @process_event.register(TouchpointRecorded)
    def _touchpoint(self, domain_event: Any, tracking: Tracking) -> None:
        kind = domain_event.kind
        if kind not in self._KINDS:
            return
        customer_id: str = domain_event.customer_id
        at: datetime = domain_event.occurred_at
        if kind == Kind.PURCHASE:
            self._add((customer_id, THANK_YOU_CALL, domain_event.event_id), at)
            return
        if kind == Kind.COMPLAINT_RESOLVED:
            complaint_id = str(domain_event.attributes["complaint_id"])
            self._add((customer_id, SATISFACTION_CHECK, complaint_id), at)
            return
        row = self.cache.get(customer_id)
        closes_thank_you = kind == Kind.FOLLOW_UP and (
            row is None or row.last_follow_up_at is None or at > row.last_follow_up_at
        )
        closes_check = row is None or row.last_check_at is None or at > row.last_check_at
        if closes_thank_you or closes_check:
            row = self._row(customer_id)
            if closes_thank_you:
                row.last_follow_up_at = at
                self.closings[(customer_id, THANK_YOU_CALL)] = at
            if closes_check:
                row.last_check_at = at
                self.closings[(customer_id, SATISFACTION_CHECK)] = at

    def _add(self, key: TaskKey, basis_at: datetime) -> None:
        known = self.tasks.get(key)
        if known is None or basis_at < known:
            self.tasks[key] = basis_at

    def wants_commit(self) -> bool:
        return self.cache.is_full or len(self.tasks) + len(self.closings) >= TASKS_HELD

    def write(self, cursor: Any) -> None:
        rows = self.cache.dirty

        def done(customer_id: str, kind: str, basis_at: datetime) -> bool:
            row = rows.get(customer_id) or self.cache.get(customer_id)
            if row is None:
                return False
            done_by = row.last_follow_up_at if kind == THANK_YOU_CALL else row.last_check_at
            return done_by is not None and done_by >= basis_at

        self.view.write_changes(
            cursor,
            rows.values(),
            ((key, at, done(key[0], key[1], at)) for key, at in self.tasks.items()),
            [(c, kind, at) for (c, kind), at in self.closings.items()],
        )

    def committed(self) -> None:
        super().committed()
        self.cache.committed()
        self.tasks.clear()
        self.closings.clear()
