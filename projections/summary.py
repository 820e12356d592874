"""The relationship summary ("customer 360"): one row per customer with stage, cycle,
the latest stage change, counts by kind and phase, first and last touchpoint, purchases
and revenue, survey scores, open complaints, the channel mix behind the service mode, the
account manager and the relationship type, the months the customer was active (for
cohort retention), and the relationship's version.

The relationship type (Contract 7) is one of the service modes of CRM practice:
``dedicated_personal_assistance`` while an account manager is in charge, whatever the
channels; else ``transactional`` for purchases and nothing that builds a relationship
(no inquiry, response, survey, follow-up, community or personal sales contact); else
the service mode of the channel mix. ``relationship_type`` is its one definition; the
row stores it, so that lists filter on it.

At-risk flags depend on the time they are judged at, so they are computed when read
(``as_of``), as ``projections.at_risk`` defines them. "Latest" is judged by
``occurred_at``, so late events land where they belong.
"""

from __future__ import annotations

import bisect
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking

from lifecycle.domain.vocabulary import PHASE_OF_KIND, Channel, Kind, Phase, Stage
from lifecycle.persistence.topics import stored_topics
from projections.at_risk import JUDGED_ON, FlagsAt
from projections.readmodel import (
    AccountManagerAssigned,
    AccountManagerUnassigned,
    ReadModel,
    RelationshipStarted,
    RowCache,
    StageChanged,
    TouchpointRecorded,
)
from projections.views import SqlView, Table, backend_views

SERVICE_MODES = ("personal_assistance", "self_service", "automated", "community")
MODE_OF_CHANNEL = {
    "email": "personal_assistance",
    "phone": "personal_assistance",
    "in_person": "personal_assistance",
    "chat": "personal_assistance",
    "mail": "personal_assistance",
    "video": "personal_assistance",
    "web": "self_service",
    "self_service": "self_service",
    "automated": "automated",
    "community": "community",
    "social": "community",
    "event": "community",
}

TRANSACTIONAL = "transactional"
DEDICATED_PERSONAL_ASSISTANCE = "dedicated_personal_assistance"
RELATIONSHIP_TYPES = (TRANSACTIONAL, DEDICATED_PERSONAL_ASSISTANCE, *SERVICE_MODES)
RELATIONSHIP_BUILDING_KINDS = frozenset(
    {
        Kind.INQUIRY.value,
        Kind.RESPONSE.value,
        Kind.SURVEY.value,
        Kind.FOLLOW_UP.value,
        Kind.COMMUNITY.value,
        Kind.SALES_CONTACT.value,
    }
)
"""Kinds of touchpoint that build a relationship beyond buying (a sales contact is the
personal contact of the contract's rule)."""


def relationship_type(
    kind_counts: Mapping[str, int], service_mode: str | None, account_manager: str | None
) -> str | None:
    """The relationship type (see the module docstring) of a customer with touchpoints
    ``kind_counts`` (kinds with none left out), whose channel mix gives ``service_mode``;
    None only without a touchpoint."""
    if account_manager is not None:
        return DEDICATED_PERSONAL_ASSISTANCE
    if kind_counts.get(Kind.PURCHASE.value) and RELATIONSHIP_BUILDING_KINDS.isdisjoint(kind_counts):
        return TRANSACTIONAL
    return service_mode


_PHASES = tuple(phase.value for phase in Phase)
_PHASE_OF_KIND_NAME = {kind.value: phase.value for kind, phase in PHASE_OF_KIND.items()}

_COLUMNS = (
    ("customer_id", "TEXT NOT NULL"),
    ("relationship_id", "TEXT NOT NULL"),
    ("version", "BIGINT NOT NULL"),
    ("stage", "TEXT NOT NULL"),
    ("stage_since", "{time}"),
    ("cycle", "BIGINT NOT NULL"),
    ("started_at", "{time}"),
    ("touchpoints", "BIGINT NOT NULL"),
    ("first_touchpoint_at", "{time}"),
    ("last_touchpoint_at", "{time}"),
    ("kind_counts", "TEXT NOT NULL"),
    ("channel_counts", "TEXT NOT NULL"),
    ("purchases", "BIGINT NOT NULL"),
    ("revenue", "TEXT NOT NULL"),
    ("survey_count", "BIGINT NOT NULL"),
    ("survey_score_sum", "BIGINT NOT NULL"),
    ("latest_survey_score", "BIGINT"),
    ("latest_survey_at", "{time}"),
    ("open_complaints", "TEXT NOT NULL"),
    ("resolved_complaints", "TEXT NOT NULL"),
    ("oldest_open_complaint_at", "{time}"),
    ("active_months", "TEXT NOT NULL"),
    ("previous_stage", "TEXT"),
    ("stage_rule", "TEXT"),
    ("account_manager", "TEXT"),
    ("relationship_type", "TEXT"),
)


_KIND_NAMES = tuple(kind.value for kind in Kind)
_KIND_INDEX = {name: index for index, name in enumerate(_KIND_NAMES)}
_CHANNEL_NAMES = tuple(channel.value for channel in Channel)
_CHANNEL_INDEX = {name: len(_KIND_NAMES) + index for index, name in enumerate(_CHANNEL_NAMES)}
_COUNTS = len(_KIND_NAMES) + len(_CHANNEL_NAMES)
_STAGE_NAMES = {stage.value: stage.value for stage in Stage}
_CURRENCIES: dict[str, str] = {}
"""Each decoded event brings its own copy of these strings: rows keep the one copy."""


class SummaryRow:
    """One customer's summary while it is being folded.

    A rebuild holds a row per customer, so rows are compact: counts by kind and by
    channel are arrays indexed by the vocabulary's order, active months a sorted array,
    and complaint collections exist only once the customer has complained.
    """

    __slots__ = (
        "_counts",
        "_open_complaints",
        "_relationship_id",
        "_resolved_complaints",
        "_revenue",
        "account_manager",
        "active_months",
        "customer_id",
        "cycle",
        "first_touchpoint_at",
        "last_touchpoint_at",
        "latest_survey_at",
        "latest_survey_score",
        "previous_stage",
        "purchases",
        "stage",
        "stage_rule",
        "stage_since",
        "started_at",
        "survey_count",
        "survey_score_sum",
        "touchpoints",
        "version",
    )

    def __init__(self, customer_id: str, relationship_id: UUID) -> None:
        self.customer_id = customer_id
        self._relationship_id = relationship_id
        """The aggregate's id as events carry it (the one object the log reader keeps)."""
        self.version = 0
        self.stage = Stage.EXPLORATION.value
        self.stage_since: datetime | None = None
        self.cycle = 1
        self.started_at: datetime | None = None
        self.touchpoints = 0
        self.first_touchpoint_at: datetime | None = None
        self.last_touchpoint_at: datetime | None = None
        self._counts = array("I", bytes(4 * _COUNTS))
        """Touchpoints by kind, then by channel, in vocabulary order."""
        self.purchases = 0
        self._revenue: tuple[Any, ...] = ()
        """Currency, total, currency, total, … (most customers buy in one currency)."""
        self.survey_count = 0
        self.survey_score_sum = 0
        self.latest_survey_score: int | None = None
        self.latest_survey_at: datetime | None = None
        self._open_complaints: dict[str, datetime] | None = None
        self._resolved_complaints: set[str] | None = None
        self.active_months = array("I")
        """Months (year * 12 + month - 1, UTC) with a touchpoint, ascending."""
        self.previous_stage: str | None = None
        """The stage the latest change left (None: no change yet)."""
        self.stage_rule: str | None = None
        """The rule of the latest change."""
        self.account_manager: str | None = None

    @property
    def relationship_id(self) -> str:
        return str(self._relationship_id)

    @property
    def revenue(self) -> dict[str, Decimal]:
        """Purchase totals by currency."""
        pairs = self._revenue
        return dict(zip(pairs[::2], pairs[1::2], strict=True))

    def _add_revenue(self, currency: str, amount: Decimal) -> None:
        pairs = self._revenue
        for index in range(0, len(pairs), 2):
            if pairs[index] == currency:
                self._revenue = (
                    *pairs[:index],
                    currency,
                    pairs[index + 1] + amount,
                    *pairs[index + 2 :],
                )
                return
        self._revenue = (*pairs, currency, amount)

    def move_to(self, stage: str, since: datetime, cycle: int, from_stage: str, rule: str) -> None:
        self.previous_stage = _STAGE_NAMES.get(from_stage, from_stage)
        self.stage = _STAGE_NAMES.get(stage, stage)
        self.stage_since = since
        self.cycle = cycle
        self.stage_rule = rule

    def touch(self, event: Any) -> None:
        at: datetime = event.occurred_at
        kind: str = event.kind
        self.touchpoints += 1
        if self.first_touchpoint_at is None or at < self.first_touchpoint_at:
            self.first_touchpoint_at = at
        if self.last_touchpoint_at is None or at > self.last_touchpoint_at:
            self.last_touchpoint_at = at
        counts = self._counts
        counts[_KIND_INDEX[kind]] += 1
        counts[_CHANNEL_INDEX[event.channel]] += 1
        utc = at if at.tzinfo is UTC else at.astimezone(UTC)
        month = utc.year * 12 + utc.month - 1
        months = self.active_months
        if not months or month > months[-1]:
            months.append(month)
        elif month not in months:
            bisect.insort(months, month)
        if kind == Kind.PURCHASE:
            attributes = event.attributes
            self.purchases += 1
            currency = attributes.get("currency", "")
            self._add_revenue(
                _CURRENCIES.setdefault(currency, currency), Decimal(str(attributes["amount"]))
            )
        elif kind == Kind.SURVEY:
            score = int(event.attributes["score"])
            self.survey_count += 1
            self.survey_score_sum += score
            if self.latest_survey_at is None or at >= self.latest_survey_at:
                self.latest_survey_at = at
                self.latest_survey_score = score
        elif kind == Kind.COMPLAINT:
            complaint_id = str(event.attributes["complaint_id"])
            if not self._resolved_complaints or complaint_id not in self._resolved_complaints:
                if self._open_complaints is None:
                    self._open_complaints = {}
                raised = self._open_complaints.get(complaint_id)
                if raised is None or at < raised:
                    self._open_complaints[complaint_id] = at
        elif kind == Kind.COMPLAINT_RESOLVED:
            complaint_id = str(event.attributes["complaint_id"])
            if self._open_complaints:
                self._open_complaints.pop(complaint_id, None)
            if self._resolved_complaints is None:
                self._resolved_complaints = set()
            self._resolved_complaints.add(complaint_id)

    def to_db(self, view: SqlView) -> tuple[Any, ...]:
        time = view.dialect.time
        open_complaints = self.open_complaints
        oldest = min(open_complaints.values()) if open_complaints else None
        return (
            self.customer_id,
            self.relationship_id,
            self.version,
            self.stage,
            time(self.stage_since),
            self.cycle,
            time(self.started_at),
            self.touchpoints,
            time(self.first_touchpoint_at),
            time(self.last_touchpoint_at),
            orjson.dumps(self.kind_counts, option=orjson.OPT_SORT_KEYS).decode(),
            orjson.dumps(self.channel_counts, option=orjson.OPT_SORT_KEYS).decode(),
            self.purchases,
            orjson.dumps(
                {c: str(v) for c, v in sorted(self.revenue.items())}, option=orjson.OPT_SORT_KEYS
            ).decode(),
            self.survey_count,
            self.survey_score_sum,
            self.latest_survey_score,
            time(self.latest_survey_at),
            orjson.dumps({c: time_text(v) for c, v in sorted(open_complaints.items())}).decode(),
            orjson.dumps(sorted(self._resolved_complaints or ())).decode(),
            time(oldest),
            orjson.dumps(self.active_months.tolist()).decode(),
            self.previous_stage,
            self.stage_rule,
            self.account_manager,
            self.relationship_type,
        )

    @classmethod
    def from_db(cls, row: Any, view: SqlView) -> SummaryRow:
        from_time = view.dialect.from_time
        self = cls(row["customer_id"], UUID(row["relationship_id"]))
        self.version = row["version"]
        self.stage = row["stage"]
        self.stage_since = from_time(row["stage_since"])
        self.cycle = row["cycle"]
        self.started_at = from_time(row["started_at"])
        self.touchpoints = row["touchpoints"]
        self.first_touchpoint_at = from_time(row["first_touchpoint_at"])
        self.last_touchpoint_at = from_time(row["last_touchpoint_at"])
        for name, count in orjson.loads(row["kind_counts"]).items():
            self._counts[_KIND_INDEX[name]] = count
        for name, count in orjson.loads(row["channel_counts"]).items():
            self._counts[_CHANNEL_INDEX[name]] = count
        self.purchases = row["purchases"]
        for currency, total in orjson.loads(row["revenue"]).items():
            self._add_revenue(currency, Decimal(total))
        self.survey_count = row["survey_count"]
        self.survey_score_sum = row["survey_score_sum"]
        self.latest_survey_score = row["latest_survey_score"]
        self.latest_survey_at = from_time(row["latest_survey_at"])
        self._open_complaints = {
            c: datetime.fromisoformat(v) for c, v in orjson.loads(row["open_complaints"]).items()
        } or None
        self._resolved_complaints = set(orjson.loads(row["resolved_complaints"])) or None
        self.active_months = array("I", orjson.loads(row["active_months"]))
        self.previous_stage = row["previous_stage"]
        self.stage_rule = row["stage_rule"]
        self.account_manager = row["account_manager"]
        return self

    # What readers see ---------------------------------------------------------------

    @property
    def kind_counts(self) -> dict[str, int]:
        """Touchpoints by kind (kinds with none left out), in vocabulary order."""
        return {name: n for name, n in zip(_KIND_NAMES, self._counts, strict=False) if n}

    @property
    def channel_counts(self) -> dict[str, int]:
        """Touchpoints by channel (channels with none left out), in vocabulary order."""
        channels = self._counts[len(_KIND_NAMES) :]
        return {name: n for name, n in zip(_CHANNEL_NAMES, channels, strict=True) if n}

    @property
    def open_complaints(self) -> dict[str, datetime]:
        """Complaints not resolved yet, by id, with when they were raised."""
        return self._open_complaints or {}

    @property
    def phase_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(_PHASES, 0)
        for kind, count in self.kind_counts.items():
            counts[_PHASE_OF_KIND_NAME[kind]] += count
        return counts

    @property
    def mean_survey_score(self) -> float | None:
        return self.survey_score_sum / self.survey_count if self.survey_count else None

    @property
    def service_modes(self) -> dict[str, int]:
        counts = dict.fromkeys(SERVICE_MODES, 0)
        for channel, count in self.channel_counts.items():
            counts[MODE_OF_CHANNEL.get(channel, "personal_assistance")] += count
        return counts

    @property
    def service_mode(self) -> str | None:
        """The mode most of the customer's touchpoints went through (ties: list order)."""
        modes = self.service_modes
        best = max(SERVICE_MODES, key=lambda mode: modes[mode])
        return best if modes[best] else None

    @property
    def relationship_type(self) -> str | None:
        return relationship_type(self.kind_counts, self.service_mode, self.account_manager)

    @property
    def oldest_open_complaint_at(self) -> datetime | None:
        return min(self._open_complaints.values()) if self._open_complaints else None

    p_alive = None
    """Not known to the projection: the read API joins it in from the latest fit, so a
    row judged here never raises ``likely_lapsed``."""

    def flags(self, as_of: datetime) -> list[str]:
        judge = FlagsAt(as_of).reader(JUDGED_ON)
        return judge([getattr(self, name) for name in JUDGED_ON])


def time_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _select_list(columns: Sequence[str]) -> str:
    return ", ".join(columns) if columns else "*"


def _select_page(columns: Sequence[str], rows: str, where: Sequence[str]) -> str:
    statement = f"SELECT {_select_list(columns)} FROM {rows}"
    if where:
        statement += " WHERE " + " AND ".join(where)
    return statement + " ORDER BY customer_id LIMIT ?"


@dataclass(frozen=True)
class CohortRow:
    """Customers first active in ``cohort`` (a month) and how many were active k months on."""

    cohort: str
    customers: int
    active_by_offset: tuple[int, ...]


class SummaryView(SqlView):
    projection_name = "summary"
    tables = (
        Table(
            "relationships",
            _COLUMNS,
            ("customer_id",),
            indexes=(
                ("stage", "stage, customer_id"),
                ("relationship_type", "relationship_type, customer_id"),
                ("account_manager", "account_manager, customer_id"),
            ),
        ),
    )

    def rows_for(self, keys: Iterable[str]) -> list[tuple[str, SummaryRow]]:
        return [
            (row["customer_id"], SummaryRow.from_db(row, self))
            for row in self.load_by_keys("relationships", "customer_id", keys)
        ]

    def write_rows(self, cursor: Any, rows: Iterable[SummaryRow]) -> None:
        self.upsert(cursor, "relationships", (r.to_db(self) for r in rows))

    def summary(self, customer_id: str) -> tuple[SummaryRow | None, int | None]:
        record, position = self.record(customer_id)
        return (SummaryRow.from_db(record, self) if record is not None else None), position

    def page(
        self,
        *,
        as_of: datetime,
        stages: Sequence[str] = (),
        flags: Sequence[str] = (),
        at_risk: bool | None = None,
        relationship_types: Sequence[str] = (),
        after: str | None = None,
        limit: int = 50,
    ) -> tuple[list[SummaryRow], int | None]:
        """Summaries in customer_id order after ``after``, filtered by stage, flags and
        relationship type."""
        records, position = self.page_records(
            as_of=as_of,
            stages=stages,
            flags=flags,
            at_risk=at_risk,
            relationship_types=relationship_types,
            after=after,
            limit=limit,
        )
        return [SummaryRow.from_db(record, self) for record in records], position

    # Rows as stored (the read API renders them without building a SummaryRow) --------

    def record(
        self, customer_id: str, columns: Sequence[str] = ()
    ) -> tuple[Any | None, int | None]:
        """One customer's row as stored (or None), its ``columns`` (default all), and
        the position it reflects."""
        rows, position = self.fetch_with_position(
            f"SELECT {_select_list(columns)} FROM {self._rows()} WHERE customer_id = ?",
            (customer_id,),
        )
        return (rows[0] if rows else None), position

    def page_records(
        self,
        *,
        as_of: datetime,
        stages: Sequence[str] = (),
        flags: Sequence[str] = (),
        at_risk: bool | None = None,
        relationship_types: Sequence[str] = (),
        after: str | None = None,
        limit: int = 50,
        columns: Sequence[str] = (),
        p_alive_below: float | None = None,
        limits: Mapping[str, Any] | None = None,
    ) -> tuple[list[Any], int | None]:
        """Rows as stored, as ``page`` selects them, their ``columns`` (default all);
        ``p_alive_below`` keeps customers whom the latest fit gives a lower p_alive, and
        ``limits`` are the flags' bounds that settings configure (``FlagsAt``).

        Each stage is read along the (stage, customer_id) index, already in order: with
        several stages, one ordered and limited read per stage, merged, rather than
        ``stage IN (…)``, which sorts every row of those stages to return a page.
        """
        where: list[str] = []
        params: list[Any] = []
        if after is not None:
            where.append("customer_id > ?")
            params.append(after)
        if p_alive_below is not None:
            where.append("COALESCE(p_alive < ?, FALSE)")
            params.append(p_alive_below)
        conditions = FlagsAt(as_of, self.dialect.time, limits).conditions()
        for flag in flags:
            where.append(conditions[flag][0])
            params.extend(conditions[flag][1])
        if at_risk is not None:
            any_flag = " OR ".join(condition for condition, _ in conditions.values())
            where.append(f"({any_flag})" if at_risk else f"NOT ({any_flag})")
            for _, values in conditions.values():
                params.extend(values)
        types = list(dict.fromkeys(relationship_types))
        if types:
            where.append(f"relationship_type IN ({', '.join('?' * len(types))})")
            params.extend(types)
        wanted = list(dict.fromkeys(stages))
        if len(wanted) <= 1:
            statement = _select_page(columns, self._rows(), where + ["stage = ?"] * len(wanted))
            return self.fetch_with_position(statement, [*params, *wanted, limit])
        per_stage = _select_page(columns, self._rows(), [*where, "stage = ?"])
        statement = " UNION ALL ".join(
            f"SELECT * FROM ({per_stage}) AS stage_{number}" for number in range(len(wanted))
        )
        merged: list[Any] = []
        for stage in wanted:
            merged.extend([*params, stage, limit])
        return self.fetch_with_position(
            f"{statement} ORDER BY customer_id LIMIT ?", [*merged, limit]
        )

    predictions: str | None = None
    """The analytics models' latest predictions, as this view's reads reach that table
    (``join_predictions``); None: no ``p_alive`` to join, it reads null."""

    def join_predictions(self, table: str) -> None:
        self.predictions = table

    def _rows(self) -> str:
        """The summary rows with the customer's ``p_alive`` from the latest fit: what
        pages and records read, so that flags and filters see it as a column."""
        p_alive = (
            f"(SELECT p.p_alive FROM {self.predictions} p WHERE p.customer_id = r.customer_id)"
            if self.predictions
            else f"CAST(NULL AS {self.dialect.float_type})"
        )
        return f"(SELECT r.*, {p_alive} AS p_alive FROM {{relationships}} r) AS relationships"

    def book_records(
        self, manager_id: str, *, after: str | None, limit: int, columns: Sequence[str] = ()
    ) -> tuple[list[Any], int | None]:
        """Rows as stored of the customers ``manager_id`` is in charge of, in customer_id
        order after ``after``."""
        where = ["account_manager = ?"]
        params: list[Any] = [manager_id]
        if after is not None:
            where.append("customer_id > ?")
            params.append(after)
        return self.fetch_with_position(
            _select_page(columns, self._rows(), where), [*params, limit]
        )

    def starting_with(
        self, prefix: str, limit: int, columns: Sequence[str] = ()
    ) -> tuple[list[Any], int | None]:
        """Rows as stored whose customer_id starts with ``prefix`` (a search box: it
        reads every row, in customer_id order)."""
        return self.fetch_with_position(
            _select_page(columns, self._rows(), ["substr(customer_id, 1, ?) = ?"]),
            [len(prefix), prefix, limit],
        )

    def cohorts(self) -> tuple[list[CohortRow], int | None]:
        """Monthly cohort retention: cohort = month of a customer's first touchpoint."""
        rows, position = self.fetch_with_position("SELECT active_months FROM {relationships}")
        by_cohort: dict[int, Counter[int]] = {}
        sizes: Counter[int] = Counter()
        for row in rows:
            months = orjson.loads(row["active_months"])
            if not months:
                continue
            first = months[0]
            sizes[first] += 1
            offsets = by_cohort.setdefault(first, Counter())
            for month in months:
                offsets[month - first] += 1
        result = []
        for cohort in sorted(sizes):
            offsets = by_cohort[cohort]
            span = max(offsets) + 1
            result.append(
                CohortRow(
                    cohort=f"{cohort // 12:04d}-{cohort % 12 + 1:02d}",
                    customers=sizes[cohort],
                    active_by_offset=tuple(offsets.get(k, 0) for k in range(span)),
                )
            )
        return result, position


class Summary(ReadModel[SummaryView]):
    """Projects the relationship summary."""

    name = "summary"
    description = "relationship summary (customer 360)"
    view_classes = backend_views(SummaryView)
    topics = (
        *ReadModel.topics,
        *stored_topics(AccountManagerAssigned),
        *stored_topics(AccountManagerUnassigned),
    )

    def reset(self) -> None:
        super().reset()
        self.cache: RowCache[SummaryRow] = self.row_cache(self.view.rows_for)

    def prefetch(self, events: Sequence[Any]) -> None:
        if not self.cache.complete:
            self.cache.prefetch({e.customer_id for e in events})

    def _row(self, event: Any) -> SummaryRow:
        customer_id: str = event.customer_id
        cache = self.cache
        row = cache.get(customer_id)
        if row is None:
            row = SummaryRow(customer_id, event.originator_id)
            cache.put(customer_id, row)
        else:
            cache.touched(customer_id, row)
        row.version = event.originator_version
        return row

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events of other classes change no summary."""

    @process_event.register(RelationshipStarted)
    def _started(self, domain_event: Any, tracking: Tracking) -> None:
        row = self._row(domain_event)
        row.started_at = domain_event.started_at
        row.stage_since = domain_event.started_at

    @process_event.register(TouchpointRecorded)
    def _touchpoint(self, domain_event: Any, tracking: Tracking) -> None:
        self._row(domain_event).touch(domain_event)

    @process_event.register(StageChanged)
    def _stage_changed(self, domain_event: Any, tracking: Tracking) -> None:
        self._row(domain_event).move_to(
            domain_event.to_stage,
            domain_event.effective_at,
            domain_event.cycle,
            domain_event.from_stage,
            domain_event.rule,
        )

    @process_event.register(AccountManagerAssigned)
    def _manager_assigned(self, domain_event: Any, tracking: Tracking) -> None:
        self._row(domain_event).account_manager = domain_event.manager_id

    @process_event.register(AccountManagerUnassigned)
    def _manager_unassigned(self, domain_event: Any, tracking: Tracking) -> None:
        self._row(domain_event).account_manager = None

    def wants_commit(self) -> bool:
        return self.cache.is_full

    def write(self, cursor: Any) -> None:
        self.view.write_rows(cursor, self.cache.dirty.values())

    def committed(self) -> None:
        super().committed()
        self.cache.committed()
