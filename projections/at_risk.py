"""At-risk flags (Contract 4), defined once: ``DEFINITIONS`` is the one table of them,
and the summary row (``SummaryRow.flags``), the SQL that filters pages
(``SummaryView.page_records``) and the read API's renderer (``SummaryRenderer``) all
judge them through ``FlagsAt``.

A flag is raised on a relationship that is not dissolved (a dissolved one is past risk)
when a value of its summary compares below (``<``) or at most (``<=``) a bound that
depends on the time the flags are judged at (``as_of``); a value not known (null)
raises nothing. Each flag names its value by the summary table's column, which is also
the attribute of ``SummaryRow``, so adding a flag is adding one entry.

A flag judged on a value the summary does not keep itself is one entry too, that value
being offered under its name where flags are judged: ``likely_lapsed`` is judged on the
analytics models' ``p_alive`` (Contract 8), which the summary's reads join in from the
latest fit's predictions (null before any fit, so the flag is raised once a model is
fitted) and which ``SummaryRow`` does not know (null). Its bound is a setting
(``LIFECYCLE_P_ALIVE_AT_RISK``): bounds that settings configure are given to ``FlagsAt``
by flag name (``limits``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from lifecycle.domain.vocabulary import Stage
from lifecycle.settings import Settings

_DISSOLUTION = Stage.DISSOLUTION.value
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {"<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class Flag:
    """Raised when the summary's ``value`` is ``comparison`` ``bound(as_of)``."""

    name: str
    value: str
    comparison: Literal["<", "<="]
    bound: Callable[[datetime], Any]


LIKELY_LAPSED = "likely_lapsed"


def _days_before(days: int) -> Callable[[datetime], datetime]:
    return lambda as_of: as_of - timedelta(days=days)


def _fixed(limit: float) -> Callable[[datetime], float]:
    return lambda as_of: limit


def _setting(name: str) -> Callable[[datetime], Any]:
    """The setting's default: ``limits_of`` gives its value where settings are known."""
    default = Settings.model_fields[name].default
    return lambda as_of: default


DEFINITIONS = (
    Flag("no_touchpoint_90_days", "last_touchpoint_at", "<", _days_before(90)),
    Flag("low_survey_score", "latest_survey_score", "<=", _fixed(6)),
    Flag("complaint_open_14_days", "oldest_open_complaint_at", "<", _days_before(14)),
    Flag(LIKELY_LAPSED, "p_alive", "<", _setting("p_alive_at_risk")),
)
FLAGS = tuple(flag.name for flag in DEFINITIONS)
"""The flags' names, in the order a summary lists them."""
JUDGED_ON = ("stage", *dict.fromkeys(flag.value for flag in DEFINITIONS))
"""What a summary's flags are judged on (for ``FlagsAt.reader``)."""


def limits_of(settings: Settings) -> dict[str, Any]:
    """The bounds of the flags that settings configure, by flag name (for ``FlagsAt``)."""
    return {LIKELY_LAPSED: settings.p_alive_at_risk}


class FlagsAt:
    """The flags judged at ``as_of``, each bound computed once in the form values are
    compared in: ``time`` turns a time into its stored form (a view dialect's, for rows
    and SQL as stored); without it, times stay ``datetime`` (for ``SummaryRow``).
    ``limits`` replaces the bounds of flags that settings configure, by flag name."""

    def __init__(
        self,
        as_of: datetime,
        time: Callable[[datetime], Any] | None = None,
        limits: Mapping[str, Any] | None = None,
    ) -> None:
        limits = limits or {}
        bounds = [limits.get(flag.name, flag.bound(as_of)) for flag in DEFINITIONS]
        if time is not None:
            bounds = [time(b) if isinstance(b, datetime) else b for b in bounds]
        self._bounds = tuple(zip(DEFINITIONS, bounds, strict=True))

    def reader(self, columns: Sequence[str]) -> Callable[[Sequence[Any]], list[str]]:
        """The flags of a row holding ``columns`` (``stage`` and every flag's value
        among them) in that order."""
        stage = columns.index("stage")
        checks = tuple(
            (flag.name, columns.index(flag.value), _COMPARE[flag.comparison], bound)
            for flag, bound in self._bounds
        )

        # A plain loop, not a comprehension: this is the read API's hot path, and Python
        # 3.11 calls a comprehension as a function.
        def flags(row: Sequence[Any]) -> list[str]:
            if row[stage] == _DISSOLUTION:
                return []
            raised = []
            for name, index, compare, bound in checks:
                value = row[index]
                if value is not None and compare(value, bound):
                    raised.append(name)
            return raised

        return flags

    def conditions(self) -> dict[str, tuple[str, list[Any]]]:
        """Each flag as a condition on the summary table, with its parameters."""
        return {
            flag.name: (
                f"(stage <> '{_DISSOLUTION}' "
                f"AND COALESCE({flag.value} {flag.comparison} ?, FALSE))",
                [bound],
            )
            for flag, bound in self._bounds
        }
