"""Relationship summaries rendered for the read API straight from the summary table's
rows as stored, without a ``SummaryRow`` or a validated pydantic model in between.

A list page holds up to 500 summaries: decoding each into a ``SummaryRow``, building a
``models.RelationshipSummary`` (validated) and serializing it cost about as much again
as the rest of the request. Here each row becomes a plain dict of the model's fields,
in the model's order, and a whole answer is serialized by one ``orjson.dumps`` call.
The JSON is the same, byte for byte, as ``model_dump_json`` of the models (orjson and
pydantic print datetimes with ``Z``, floats and decimal strings alike): the tests
compare the two over a simulated population, and check every answer against the
OpenAPI document, which still comes from ``models``.

The derived figures (phases, service modes) follow the reading surface of
``projections.summary.SummaryRow``; at-risk flags are judged by ``projections.at_risk``
on the stored values, as ``SummaryView.page`` filters them; the relationship type is
read as stored (the row stores ``SummaryRow.relationship_type``, on which lists filter).

A row at a relationship's version never changes, so what it renders to, all but the
flags (which are judged at the request's time), is kept per view and reused: a list
request then costs its query, the flags and one ``orjson.dumps``. The cache is bounded
(``RENDERED_PER_VIEW``), cleared whole when full.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from lifecycle.domain.vocabulary import PHASE_OF_KIND, Phase
from projections.at_risk import FlagsAt
from projections.summary import MODE_OF_CHANNEL, SERVICE_MODES
from projections.views import SqlView

_PHASES = tuple(phase.value for phase in Phase)
_PHASE_OF_KIND = {kind.value: phase.value for kind, phase in PHASE_OF_KIND.items()}
_DEFAULT_MODE = "personal_assistance"

RENDERED_PER_VIEW = 50_000
"""Summaries kept rendered per view (about 1 KB each)."""

_Rendered = tuple[dict[str, Any], dict[str, Any]]
"""A summary's fields before its flags, and after them (the model's order)."""

_rendered: weakref.WeakKeyDictionary[SqlView, dict[Any, _Rendered]] = weakref.WeakKeyDictionary()


class SummaryRenderer:
    """Renders stored summary rows (of ``COLUMNS``, in that order: a row of sqlite3 or
    of psycopg's dict rows) with their flags judged at ``as_of``."""

    COLUMNS = (
        "customer_id",
        "relationship_id",
        "version",
        "stage",
        "stage_since",
        "cycle",
        "started_at",
        "touchpoints",
        "first_touchpoint_at",
        "last_touchpoint_at",
        "kind_counts",
        "channel_counts",
        "purchases",
        "revenue",
        "survey_count",
        "survey_score_sum",
        "latest_survey_score",
        "open_complaints",
        "oldest_open_complaint_at",
        "relationship_type",
        "account_manager",
        "p_alive",
    )

    BOOK_COLUMNS = (
        "customer_id",
        "relationship_type",
        "stage",
        "stage_since",
        "cycle",
        "last_touchpoint_at",
        "latest_survey_score",
        "oldest_open_complaint_at",
        "previous_stage",
        "stage_rule",
        "p_alive",
    )

    def __init__(
        self, view: SqlView, as_of: datetime, limits: Mapping[str, Any] | None = None
    ) -> None:
        self.as_of = as_of
        self._from_time = view.dialect.from_time
        # Bounds in the stored form (SQLite: fixed-width UTC text, which compares like
        # time), so a row's flags are judged without parsing its times first.
        flags_at = FlagsAt(as_of, view.dialect.time)
        self._flags = flags_at.reader(self.COLUMNS)
        self._book_flags = flags_at.reader(self.BOOK_COLUMNS)
        self._rendered = _rendered.setdefault(view, {})

    def page(self, rows: Iterable[Any], position: int, next_cursor: str | None) -> bytes:
        """The JSON of a ``models.SummaryPage``."""
        return _dumps(
            {
                "position": position,
                "as_of": self.as_of,
                "items": [self.item(row) for row in rows],
                "next_cursor": next_cursor,
            }
        )

    def one(self, row: Any, position: int) -> bytes:
        """The JSON of a ``models.SummaryResponse``."""
        return _dumps({"position": position, "as_of": self.as_of, "relationship": self.item(row)})

    def item(self, row: Any) -> dict[str, Any]:
        """The fields of a ``models.RelationshipSummary`` from a row of ``COLUMNS``."""
        values = tuple(row.values()) if isinstance(row, dict) else row
        key = (values[1], values[2])  # relationship_id, version
        rendered = self._rendered.get(key)
        if rendered is None:
            rendered = self._render(values)
            if len(self._rendered) >= RENDERED_PER_VIEW:
                self._rendered.clear()
            self._rendered[key] = rendered
        before, after = rendered
        flags = self._flags(values)
        return {**before, "at_risk": bool(flags), "flags": flags, **after}

    def _render(self, values: tuple[Any, ...]) -> _Rendered:
        (
            customer_id,
            relationship_id,
            version,
            stage,
            stage_since,
            cycle,
            started_at,
            touchpoints,
            first_touchpoint_at,
            last_touchpoint_at,
            kind_counts,
            channel_counts,
            purchases,
            revenue,
            survey_count,
            survey_score_sum,
            latest_score,
            open_complaints,
            oldest_open,
            kind_of_relationship,
            account_manager,
            _p_alive,  # judged by the flags only
        ) = values
        from_time = self._from_time
        kinds: dict[str, int] = orjson.loads(kind_counts)
        phases = dict.fromkeys(_PHASES, 0)
        for kind, count in kinds.items():
            phases[_PHASE_OF_KIND[kind]] += count
        modes = dict.fromkeys(SERVICE_MODES, 0)
        for channel, count in orjson.loads(channel_counts).items():
            modes[MODE_OF_CHANNEL.get(channel, _DEFAULT_MODE)] += count
        best_mode = max(SERVICE_MODES, key=modes.__getitem__)
        before = {
            "customer_id": customer_id,
            "relationship_id": relationship_id,
            "version": version,
            "stage": stage,
            "stage_since": from_time(stage_since),
            "cycle": cycle,
            "started_at": from_time(started_at),
            "touchpoints": touchpoints,
            "first_touchpoint_at": from_time(first_touchpoint_at),
            "last_touchpoint_at": from_time(last_touchpoint_at),
            "counts_by_kind": dict(sorted(kinds.items())),
            "counts_by_phase": phases,
            "purchases": purchases,
            "revenue": {
                currency: str(Decimal(amount)) for currency, amount in orjson.loads(revenue).items()
            },
            "surveys": survey_count,
            "latest_survey_score": latest_score,
            "mean_survey_score": survey_score_sum / survey_count if survey_count else None,
            "open_complaints": len(orjson.loads(open_complaints)),
            "oldest_open_complaint_at": from_time(oldest_open),
            "service_mode": best_mode if modes[best_mode] else None,
            "touchpoints_by_service_mode": modes,
        }
        after = {"relationship_type": kind_of_relationship, "account_manager": account_manager}
        return before, after

    def book(
        self, rows: Iterable[Any], manager_id: str, position: int, next_cursor: str | None
    ) -> bytes:
        """The JSON of a ``models.BookPage`` from rows of ``BOOK_COLUMNS``."""
        return _dumps(
            {
                "position": position,
                "as_of": self.as_of,
                "manager_id": manager_id,
                "items": [self.book_entry(row) for row in rows],
                "next_cursor": next_cursor,
            }
        )

    def book_entry(self, row: Any) -> dict[str, Any]:
        """The fields of a ``models.BookEntry`` from a row of ``BOOK_COLUMNS``."""
        values = tuple(row.values()) if isinstance(row, dict) else row
        (
            customer_id,
            kind_of_relationship,
            stage,
            stage_since,
            cycle,
            last_touchpoint_at,
            _latest_score,
            _oldest_open,
            previous_stage,
            stage_rule,
            _p_alive,  # judged by the flags only
        ) = values
        from_time = self._from_time
        flags = self._book_flags(values)
        return {
            "customer_id": customer_id,
            "relationship_type": kind_of_relationship,
            "stage": stage,
            "stage_since": from_time(stage_since),
            "cycle": cycle,
            "last_touchpoint_at": from_time(last_touchpoint_at),
            "at_risk": bool(flags),
            "flags": flags,
            "latest_stage_change": None
            if previous_stage is None
            else {
                "from_stage": previous_stage,
                "to_stage": stage,
                "cycle": cycle,
                "rule": stage_rule,
                "effective_at": from_time(stage_since),
            },
        }


def _dumps(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_UTC_Z)
