"""Stage transitions and the funnel: how many relationships sit in each stage and how
many ever entered it, every transition (with its rule), conversion between consecutive
stages, how long stays in each stage lasted, and why relationships dissolved.

A stay is measured from the ``effective_at`` of the change that entered a stage to that
of the change that left it, in whole days; a late touchpoint can make a change take
effect before the previous one, which counts as a stay of zero days. Medians are over
completed stays. Dissolution reasons are the rule (cancelled, inactivity, manual) and,
for a cancellation, the reason its touchpoint gave (a manual change: its reason).

What the funnel answers costs the same however many relationships there are: the
relationships in each stage are counted as they move (the ``stages`` table, written
with the rows, by increments, with no row for an empty stage: what ``COUNT(*) … GROUP
BY stage`` over the relationships gives), and the figures, medians included, are made
from tables summed over customers, once per position (``views.PerPosition``).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking

from lifecycle.domain.policy import CANCELLED, MANUAL
from lifecycle.domain.vocabulary import Kind, Stage
from projections.readmodel import (
    ReadModel,
    RelationshipStarted,
    RowCache,
    StageChanged,
    TouchpointRecorded,
)
from projections.views import PerPosition, SqlView, Table, backend_views

STARTED = "started"
"""The ``from_stage`` of the transition that begins a relationship."""

FORWARD_STAGES = (Stage.EXPLORATION, Stage.AWARENESS, Stage.EXPANSION, Stage.COMMITMENT)


class FunnelRow:
    """Where one relationship stands, as far as the funnel needs to know."""

    __slots__ = ("cancel_event_id", "cancel_reason", "customer_id", "stage", "stage_since")

    def __init__(self, customer_id: str, stage: str, stage_since: datetime | None) -> None:
        self.customer_id = customer_id
        self.stage = stage
        self.stage_since = stage_since
        self.cancel_event_id: str | None = None
        self.cancel_reason: str | None = None

    def to_db(self, view: SqlView) -> tuple[Any, ...]:
        return (
            self.customer_id,
            self.stage,
            view.dialect.time(self.stage_since),
            self.cancel_event_id,
            self.cancel_reason,
        )

    @classmethod
    def from_db(cls, row: Any, view: SqlView) -> FunnelRow:
        self = cls(row["customer_id"], row["stage"], view.dialect.from_time(row["stage_since"]))
        self.cancel_event_id = row["cancel_event_id"]
        self.cancel_reason = row["cancel_reason"]
        return self


@dataclass(frozen=True)
class StageFigures:
    stage: str
    current: int
    entered: int
    median_days: float | None
    completed_stays: int


@dataclass(frozen=True)
class Transition:
    from_stage: str
    to_stage: str
    rule: str
    count: int


@dataclass(frozen=True)
class Conversion:
    from_stage: str
    to_stage: str
    entered: int
    converted: int

    @property
    def rate(self) -> float | None:
        return self.converted / self.entered if self.entered else None


@dataclass(frozen=True)
class Dissolution:
    rule: str
    reason: str
    count: int


@dataclass(frozen=True)
class FunnelFigures:
    stages: list[StageFigures]
    transitions: list[Transition]
    conversions: list[Conversion]
    dissolutions: list[Dissolution]
    relationships: int


class FunnelView(SqlView):
    projection_name = "funnel"
    tables = (
        Table(
            "relationships",
            (
                ("customer_id", "TEXT NOT NULL"),
                ("stage", "TEXT NOT NULL"),
                ("stage_since", "{time}"),
                ("cancel_event_id", "TEXT"),
                ("cancel_reason", "TEXT"),
            ),
            ("customer_id",),
        ),
        Table(
            "transitions",
            (
                ("from_stage", "TEXT NOT NULL"),
                ("to_stage", "TEXT NOT NULL"),
                ("rule", "TEXT NOT NULL"),
                ("count", "BIGINT NOT NULL"),
            ),
            ("from_stage", "to_stage", "rule"),
        ),
        Table(
            "stays",
            (("stage", "TEXT NOT NULL"), ("days", "BIGINT NOT NULL"), ("count", "BIGINT NOT NULL")),
            ("stage", "days"),
        ),
        Table(
            "dissolutions",
            (("rule", "TEXT NOT NULL"), ("reason", "TEXT NOT NULL"), ("count", "BIGINT NOT NULL")),
            ("rule", "reason"),
        ),
        Table(
            "stages",
            (("stage", "TEXT NOT NULL"), ("count", "BIGINT NOT NULL")),
            ("stage",),
            backfill="INSERT INTO {stages} (stage, count) "
            "SELECT stage, COUNT(*) FROM {relationships} GROUP BY stage",
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._figures = PerPosition(self._read_figures)

    def rows_for(self, keys: Iterable[str]) -> list[tuple[str, FunnelRow]]:
        return [
            (row["customer_id"], FunnelRow.from_db(row, self))
            for row in self.load_by_keys("relationships", "customer_id", keys)
        ]

    def write_changes(
        self,
        cursor: Any,
        rows: Iterable[FunnelRow],
        transitions: Counter[tuple[str, str, str]],
        stays: Counter[tuple[str, int]],
        dissolutions: Counter[tuple[str, str]],
        stages: Counter[str],
    ) -> None:
        """Upsert ``rows``; add the counts (``stages``: relationships in each stage, by
        how many entered minus how many left)."""
        self.upsert(cursor, "relationships", (r.to_db(self) for r in rows))
        for base, counts in (
            ("transitions", transitions),
            ("stays", stays),
            ("dissolutions", dissolutions),
            ("stages", Counter({(stage,): n for stage, n in stages.items()})),
        ):
            if counts:
                self.upsert(
                    cursor,
                    base,
                    [(*key, n) for key, n in sorted(counts.items())],
                    [f"count = {self.table(base)}.count + excluded.count"],
                )
        if stages:
            cursor.execute(self.sql("DELETE FROM {stages} WHERE count = 0"))

    def figures(self) -> tuple[FunnelFigures, int | None]:
        """The whole funnel and the position it reflects."""
        return self._figures.at(self.position())

    def _read_figures(self) -> tuple[FunnelFigures, int | None]:
        """The whole funnel, read in one snapshot."""
        with self._read_transaction() as cursor:
            cursor.execute(self.sql("SELECT stage, count FROM {stages}"))
            current = {row["stage"]: row["count"] for row in cursor.fetchall()}
            cursor.execute(self.sql("SELECT from_stage, to_stage, rule, count FROM {transitions}"))
            transitions = [
                Transition(r["from_stage"], r["to_stage"], r["rule"], r["count"])
                for r in cursor.fetchall()
            ]
            cursor.execute(self.sql("SELECT stage, days, count FROM {stays}"))
            stays: dict[str, Counter[int]] = {}
            for r in cursor.fetchall():
                stays.setdefault(r["stage"], Counter())[r["days"]] += r["count"]
            cursor.execute(self.sql("SELECT rule, reason, count FROM {dissolutions}"))
            dissolutions = [
                Dissolution(r["rule"], r["reason"], r["count"]) for r in cursor.fetchall()
            ]
            position = self._tracking_position(cursor, self.tracking_name)
        entered: Counter[str] = Counter()
        moved: Counter[tuple[str, str]] = Counter()
        for t in transitions:
            entered[t.to_stage] += t.count
            moved[(t.from_stage, t.to_stage)] += t.count
        stages = [
            StageFigures(
                stage=stage.value,
                current=current.get(stage.value, 0),
                entered=entered.get(stage.value, 0),
                median_days=median_of_histogram(stays.get(stage.value, Counter())),
                completed_stays=sum(stays.get(stage.value, Counter()).values()),
            )
            for stage in Stage
        ]
        conversions = [
            Conversion(
                from_stage=a.value,
                to_stage=b.value,
                entered=entered.get(a.value, 0),
                converted=moved.get((a.value, b.value), 0),
            )
            for a, b in itertools.pairwise(FORWARD_STAGES)
        ]
        transitions.sort(key=lambda t: (-t.count, t.from_stage, t.to_stage, t.rule))
        dissolutions.sort(key=lambda d: (-d.count, d.rule, d.reason))
        figures = FunnelFigures(
            stages=stages,
            transitions=transitions,
            conversions=conversions,
            dissolutions=dissolutions,
            relationships=sum(current.values()),
        )
        return figures, position


def median_of_histogram(histogram: Counter[int]) -> float | None:
    """The median of values given as value -> count."""
    total = sum(histogram.values())
    if not total:
        return None
    lower_rank, upper_rank = (total - 1) // 2, total // 2
    lower = upper = None
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if lower is None and seen > lower_rank:
            lower = value
        if seen > upper_rank:
            upper = value
            break
    assert lower is not None and upper is not None
    return (lower + upper) / 2


class Funnel(ReadModel[FunnelView]):
    """Projects stage transitions and the funnel."""

    name = "funnel"
    description = "stage transitions and funnel"
    view_classes = backend_views(FunnelView)
    touchpoint_kinds = frozenset({Kind.CANCELLATION.value})

    def reset(self) -> None:
        super().reset()
        self.cache: RowCache[FunnelRow] = self.row_cache(self.view.rows_for)
        self.transitions: Counter[tuple[str, str, str]] = Counter()
        self.stays: Counter[tuple[str, int]] = Counter()
        self.dissolutions: Counter[tuple[str, str]] = Counter()
        self.stages: Counter[str] = Counter()
        """Relationships that entered (+) and left (-) each stage since the last commit."""

    def prefetch(self, events: Sequence[Any]) -> None:
        if self.cache.complete:
            return
        self.cache.prefetch(
            {
                e.customer_id
                for e in events
                if type(e) is not TouchpointRecorded or e.kind == Kind.CANCELLATION
            }
        )

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events of other classes do not move the funnel."""

    @process_event.register(RelationshipStarted)
    def _started(self, domain_event: Any, tracking: Tracking) -> None:
        row = FunnelRow(domain_event.customer_id, Stage.EXPLORATION.value, domain_event.started_at)
        replaced = self.cache.get(row.customer_id)
        if replaced is not None:
            self.stages[replaced.stage] -= 1
        self.cache.put(row.customer_id, row)
        self.stages[row.stage] += 1
        self.transitions[(STARTED, Stage.EXPLORATION.value, STARTED)] += 1

    @process_event.register(TouchpointRecorded)
    def _touchpoint(self, domain_event: Any, tracking: Tracking) -> None:
        if domain_event.kind != Kind.CANCELLATION:
            return
        row = self.cache.get(domain_event.customer_id)
        if row is None:
            return
        row.cancel_event_id = domain_event.event_id
        row.cancel_reason = domain_event.attributes.get("reason")
        self.cache.touched(row.customer_id, row)

    @process_event.register(StageChanged)
    def _stage_changed(self, domain_event: Any, tracking: Tracking) -> None:
        customer_id: str = domain_event.customer_id
        row = self.cache.get(customer_id)
        if row is None:
            row = FunnelRow(customer_id, domain_event.from_stage, None)
        else:
            self.stages[row.stage] -= 1
        effective_at: datetime = domain_event.effective_at
        if row.stage_since is not None:
            days = max((effective_at - row.stage_since).days, 0)
            self.stays[(row.stage, days)] += 1
        self.transitions[(domain_event.from_stage, domain_event.to_stage, domain_event.rule)] += 1
        if domain_event.to_stage == Stage.DISSOLUTION:
            self.dissolutions[(domain_event.rule, self._reason(row, domain_event))] += 1
        row.stage = domain_event.to_stage
        row.stage_since = effective_at
        self.stages[row.stage] += 1
        self.cache.put(customer_id, row)

    @staticmethod
    def _reason(row: FunnelRow, change: Any) -> str:
        if change.rule == CANCELLED and row.cancel_event_id == change.triggered_by:
            return row.cancel_reason or ""
        if change.rule == MANUAL:
            return str(change.reason or "")
        return ""

    def wants_commit(self) -> bool:
        return self.cache.is_full

    def write(self, cursor: Any) -> None:
        self.view.write_changes(
            cursor,
            self.cache.dirty.values(),
            self.transitions,
            self.stays,
            self.dissolutions,
            self.stages,
        )

    def committed(self) -> None:
        super().committed()
        self.cache.committed()
        self.transitions.clear()
        self.stays.clear()
        self.dissolutions.clear()
        self.stages.clear()
