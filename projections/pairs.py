"""The case read model, configured twice: a touchpoint that opens a case (a complaint,
an inquiry) and one that closes it (its resolution, a response), matched by an id,
either of which may be recorded first. ``Complaints`` and ``Inquiries`` are its two
configurations (``Pairing``), each with a table of its own.

Each case keeps the earliest opening and the earliest closing (by ``occurred_at``; the
first recorded on a tie), so a duplicate or late event never moves a case the wrong way
and the rows do not depend on how the log was cut into batches. A closing whose opening
has not arrived waits in the table and is not listed until it does.

The figures of every case (counts, median, mean and 90th percentile of the time to
closing, the oldest open case) are read in one pass over the cases once per position
of the view and kept until it moves (``views.PerPosition``): quantiles are no sums, and
the mean stays the sum of the sorted hours it always was; only the age of the oldest
open case depends on the time asked about, and is worked out from it on each request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking

from lifecycle.domain.vocabulary import Kind
from lifecycle.persistence.topics import stored_topics
from projections.readmodel import ReadModel, TouchpointRecorded
from projections.views import PerPosition, SqlView, Table, backend_views

OPEN = "open"
CLOSED = "closed"
CASES_HELD = 50_000
"""Cases folded but not written, at most: then the batch is written (the table's
earliest-wins upserts merge a case written in two batches)."""

_COLUMNS = (
    ("customer_id", "TEXT NOT NULL"),
    ("ref", "TEXT NOT NULL"),
    ("opened_at", "{time}"),
    ("opened_channel", "TEXT"),
    ("note", "TEXT"),
    ("closed_at", "{time}"),
    ("closed_channel", "TEXT"),
)


@dataclass(frozen=True)
class Pairing:
    """Which touchpoints open and close the cases of one read model, and how they name
    the case."""

    opened_by: Kind
    closed_by: Kind
    opening_ref: str | None
    """The attribute of the opening that names its case; None: the opening's event_id."""
    closing_ref: str
    """The attribute of the closing that names the case it closes (none: it closes
    nothing)."""
    note: str | None = None
    """The attribute of the opening kept as the case's note."""

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset({self.opened_by.value, self.closed_by.value})


@dataclass(slots=True)
class Case:
    customer_id: str
    ref: str
    opened_at: datetime | None = None
    opened_channel: str | None = None
    note: str | None = None
    closed_at: datetime | None = None
    closed_channel: str | None = None

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None and self.closed_at is None

    @property
    def duration(self) -> timedelta | None:
        """Opening to closing, never negative (clocks of upstream systems disagree)."""
        if self.opened_at is None or self.closed_at is None:
            return None
        return max(self.closed_at - self.opened_at, timedelta(0))

    def open(self, at: datetime, channel: str, note: str | None) -> None:
        if self.opened_at is None or at < self.opened_at:
            self.opened_at, self.opened_channel, self.note = at, channel, note

    def close(self, at: datetime, channel: str) -> None:
        if self.closed_at is None or at < self.closed_at:
            self.closed_at, self.closed_channel = at, channel


@dataclass(frozen=True)
class _CaseCounts:
    """How many cases there are, open and closed, and the hours the closed ones took."""

    total: int
    open: int
    closed: int
    median_hours: float | None
    mean_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class CaseStats(_CaseCounts):
    oldest_open_days: float | None


@dataclass(frozen=True)
class CaseFigures(_CaseCounts):
    """The figures of a set of cases that do not depend on the time they are asked at."""

    oldest_open_at: datetime | None

    @classmethod
    def of(cls, times: Iterable[tuple[datetime, datetime | None]]) -> CaseFigures:
        """The figures of the cases opened and closed (None: open) at ``times``."""
        hours: list[float] = []
        oldest: datetime | None = None
        total = 0
        for opened_at, closed_at in times:
            total += 1
            if closed_at is None:
                oldest = opened_at if oldest is None else min(oldest, opened_at)
            else:
                hours.append(max((closed_at - opened_at).total_seconds(), 0.0) / 3600)
        hours.sort()
        return cls(
            total=total,
            open=total - len(hours),
            closed=len(hours),
            median_hours=_quantile(hours, 0.5),
            mean_hours=sum(hours) / len(hours) if hours else None,
            p90_hours=_quantile(hours, 0.9),
            oldest_open_at=oldest,
        )

    def at(self, as_of: datetime) -> CaseStats:
        oldest = self.oldest_open_at
        return CaseStats(
            total=self.total,
            open=self.open,
            closed=self.closed,
            median_hours=self.median_hours,
            mean_hours=self.mean_hours,
            p90_hours=self.p90_hours,
            oldest_open_days=(
                max((as_of - oldest).total_seconds(), 0.0) / 86400 if oldest else None
            ),
        )


class CaseView(SqlView):
    """The table of cases: written with earliest-wins upserts, listed with a cursor."""

    case_base: ClassVar[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._figures = PerPosition(self._read_figures)

    def write_cases(self, cursor: Any, cases: Sequence[Case]) -> None:
        if not cases:
            return
        table = self.table(self.case_base)

        def earliest(moment: str, columns: Sequence[str]) -> list[str]:
            wins = (
                f"excluded.{moment} IS NOT NULL AND "
                f"({table}.{moment} IS NULL OR excluded.{moment} < {table}.{moment})"
            )
            return [
                f"{c} = CASE WHEN {wins} THEN excluded.{c} ELSE {table}.{c} END" for c in columns
            ]

        time = self.dialect.time
        self.upsert(
            cursor,
            self.case_base,
            (
                (
                    c.customer_id,
                    c.ref,
                    time(c.opened_at),
                    c.opened_channel,
                    c.note,
                    time(c.closed_at),
                    c.closed_channel,
                )
                for c in cases
            ),
            earliest("opened_at", ("opened_channel", "note", "opened_at"))
            + earliest("closed_at", ("closed_channel", "closed_at")),
        )

    def _case(self, row: Any) -> Case:
        from_time = self.dialect.from_time
        return Case(
            customer_id=row["customer_id"],
            ref=row["ref"],
            opened_at=from_time(row["opened_at"]),
            opened_channel=row["opened_channel"],
            note=row["note"],
            closed_at=from_time(row["closed_at"]),
            closed_channel=row["closed_channel"],
        )

    def cases(
        self,
        *,
        status: str | None = None,
        customer_id: str | None = None,
        after: tuple[str, str] | None = None,
        limit: int = 50,
    ) -> tuple[list[Case], int | None]:
        """Cases in (customer_id, ref) order after ``after``; openings not yet seen are
        left out."""
        where = ["opened_at IS NOT NULL"]
        params: list[Any] = []
        if status == OPEN:
            where.append("closed_at IS NULL")
        elif status == CLOSED:
            where.append("closed_at IS NOT NULL")
        if customer_id is not None:
            where.append("customer_id = ?")
            params.append(customer_id)
        if after is not None:
            where.append("(customer_id > ? OR (customer_id = ? AND ref > ?))")
            params.extend((after[0], after[0], after[1]))
        statement = (
            f"SELECT * FROM {{{self.case_base}}} WHERE {' AND '.join(where)} "
            "ORDER BY customer_id, ref LIMIT ?"
        )
        rows, position = self.fetch_with_position(statement, [*params, limit])
        return [self._case(row) for row in rows], position

    def figures_kept(self, customer_id: str | None = None) -> bool:
        """Whether ``stats`` would answer without reading every case: the figures of
        every case are kept at the view's position, or only one customer's are asked."""
        return customer_id is not None or self._figures.kept_at(self.position())

    def stats(
        self, *, as_of: datetime, customer_id: str | None = None, position: int | None = None
    ) -> CaseStats:
        """The figures of every case (of ``customer_id``) judged at ``as_of``; of every
        case, as kept at ``position`` if that is where the view still stands (default:
        the view's position now)."""
        if customer_id is not None:
            return CaseFigures.of(self._case_times(customer_id)[0]).at(as_of)
        if position is None:
            position = self.position()
        figures, _ = self._figures.at(position)
        return figures.at(as_of)

    def _read_figures(self) -> tuple[CaseFigures, int | None]:
        times, position = self._case_times(None)
        return CaseFigures.of(times), position

    def _case_times(
        self, customer_id: str | None
    ) -> tuple[list[tuple[datetime, datetime | None]], int | None]:
        """When each case (of ``customer_id``) opened and closed, and the position."""
        statement = (
            f"SELECT opened_at, closed_at FROM {{{self.case_base}}} WHERE opened_at IS NOT NULL"
        )
        params: list[Any] = []
        if customer_id is not None:
            statement += " AND customer_id = ?"
            params.append(customer_id)
        rows, position = self.fetch_with_position(statement, params)
        from_time = self.dialect.from_time
        times = []
        for row in rows:
            opened_at = from_time(row["opened_at"])
            assert opened_at is not None
            times.append((opened_at, from_time(row["closed_at"])))
        return times, position


def _quantile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated quantile of sorted values."""
    if not values:
        return None
    position = (len(values) - 1) * q
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def case_views(name: str, table: str) -> dict[str, type[SqlView]]:
    """The view classes of the case read model ``name``, its cases in ``table``."""
    attributes = {
        "projection_name": name,
        "case_base": table,
        "tables": (
            Table(table, _COLUMNS, ("customer_id", "ref"), indexes=(("opened", "opened_at"),)),
        ),
    }
    return backend_views(CaseView, **attributes)


class CaseModel(ReadModel[CaseView]):
    """Folds openings and closings into cases, merged in memory within a batch."""

    pairing: ClassVar[Pairing]
    topics = stored_topics(TouchpointRecorded)

    def reset(self) -> None:
        super().reset()
        self.pending: dict[tuple[str, str], Case] = {}

    def case(self, customer_id: str, ref: str) -> Case:
        key = (customer_id, ref)
        found = self.pending.get(key)
        if found is None:
            found = self.pending[key] = Case(customer_id, ref)
        return found

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Only touchpoints open and close cases."""

    @process_event.register(TouchpointRecorded)
    def _touchpoint(self, domain_event: Any, tracking: Tracking) -> None:
        pairing = self.pairing
        kind = domain_event.kind
        attributes = domain_event.attributes
        if kind == pairing.opened_by:
            ref = (
                domain_event.event_id
                if pairing.opening_ref is None
                else attributes[pairing.opening_ref]
            )
            note = attributes.get(pairing.note) if pairing.note is not None else None
            self.case(domain_event.customer_id, str(ref)).open(
                domain_event.occurred_at, domain_event.channel, note
            )
        elif kind == pairing.closed_by:
            ref = attributes.get(pairing.closing_ref)
            if ref:
                self.case(domain_event.customer_id, str(ref)).close(
                    domain_event.occurred_at, domain_event.channel
                )

    def wants_commit(self) -> bool:
        return len(self.pending) >= CASES_HELD

    def write(self, cursor: Any) -> None:
        self.view.write_cases(cursor, list(self.pending.values()))

    def committed(self) -> None:
        super().committed()
        self.pending.clear()


class Complaints(CaseModel):
    """Complaints: each complaint (by ``complaint_id``, per customer) open or resolved,
    its age and its resolution time."""

    name = "complaints"
    description = "complaints, open and resolved"
    pairing = Pairing(
        opened_by=Kind.COMPLAINT,
        closed_by=Kind.COMPLAINT_RESOLVED,
        opening_ref="complaint_id",
        closing_ref="complaint_id",
        note="reason",
    )
    touchpoint_kinds = pairing.kinds
    view_classes = case_views(name, "cases")


class Inquiries(CaseModel):
    """Inquiries and their response times: an ``inquiry`` is answered by the first
    ``response`` whose ``attributes.in_reply_to`` names its event_id; a response naming no
    inquiry answers nothing."""

    name = "inquiries"
    description = "inquiry response times"
    pairing = Pairing(
        opened_by=Kind.INQUIRY,
        closed_by=Kind.RESPONSE,
        opening_ref=None,
        closing_ref="in_reply_to",
    )
    touchpoint_kinds = pairing.kinds
    view_classes = case_views(name, "threads")
