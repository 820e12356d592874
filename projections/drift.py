"""Drift: do the live read models still equal a rebuild from the event log?

Every read model is rebuilt from position zero into its scratch generation (the
``__next`` tables a replay uses), up to the position the live tables have reached, and
the two are compared row by row, by primary key. The scratch tables are dropped
afterwards; the live ones are never written except to catch them up with the log.
The scratch generation is the one ``lifecycle replay`` uses: do not run both at once.
A running engine keeps recording meanwhile, so the comparison waits until both
generations stand at the same position (a few rounds at most).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lifecycle.service.application import LifecycleApplication
from projections.views import NEXT, SqlView
from projections.wiring import (
    Wiring,
    build_runner,
    close_runner,
    close_view,
    read_model_classes,
)

ROUNDS = 5


@dataclass(frozen=True)
class RowDifference:
    projection: str
    table: str
    key: tuple[Any, ...]
    live: tuple[Any, ...] | None
    rebuilt: tuple[Any, ...] | None

    def describe(self) -> str:
        where = f"{self.projection}.{self.table} key {self.key!r}"
        if self.live is None:
            return f"{where}: missing from the live table"
        if self.rebuilt is None:
            return f"{where}: in the live table but not in a rebuild"
        return f"{where}: live {self.live!r} != rebuilt {self.rebuilt!r}"


@dataclass
class DriftReport:
    positions: dict[str, int | None] = field(default_factory=dict)
    rows_compared: int = 0
    differences: list[RowDifference] = field(default_factory=list)


def find_drift(wiring: Wiring, names: Sequence[str] | None = None) -> DriftReport:
    """Compare every named read model (all by default) with a fresh rebuild."""
    app = wiring.application()
    report = DriftReport()
    try:
        for model in read_model_classes(names):
            _compare(wiring, app, model, report)
    finally:
        app.close()
    return report


def _compare(wiring: Wiring, app: LifecycleApplication, model: Any, report: DriftReport) -> None:
    live = wiring.open_view(model)
    scratch = wiring.open_view(model, generation=NEXT)
    try:
        with live.rebuilding():
            _compare_generations(wiring, app, model, live, scratch, report)
    finally:
        close_view(scratch)
        close_view(live)


def _compare_generations(
    wiring: Wiring,
    app: LifecycleApplication,
    model: Any,
    live: SqlView,
    scratch: SqlView,
    report: DriftReport,
) -> None:
    try:
        scratch.drop_next()
        live_position, scratch_position = _align(wiring, app, model.name, live, scratch)
        report.positions[model.name] = live_position
        if live_position != scratch_position:
            raise RuntimeError(
                f"{model.name}: the log kept moving; live at {live_position}, "
                f"rebuild at {scratch_position}"
            )
        live_rows, rebuilt_rows = live.dump(), scratch.dump()
        for table in live.tables:
            key_at = [table.column_names.index(c) for c in table.primary_key]
            live_by_key = {tuple(row[i] for i in key_at): row for row in live_rows[table.base]}
            rebuilt_by_key = {
                tuple(row[i] for i in key_at): row for row in rebuilt_rows[table.base]
            }
            report.rows_compared += len(live_by_key.keys() | rebuilt_by_key.keys())
            for key in sorted(live_by_key.keys() | rebuilt_by_key.keys(), key=repr):
                if live_by_key.get(key) != rebuilt_by_key.get(key):
                    report.differences.append(
                        RowDifference(
                            model.name,
                            table.base,
                            key,
                            live_by_key.get(key),
                            rebuilt_by_key.get(key),
                        )
                    )
    finally:
        scratch.drop_next()


def _align(
    wiring: Wiring, app: LifecycleApplication, name: str, live: SqlView, scratch: SqlView
) -> tuple[int | None, int | None]:
    live_position = scratch_position = None
    for _ in range(ROUNDS):
        for generation in (None, NEXT):
            runner = (
                build_runner(wiring, app, [name])
                if generation is None
                else build_runner(wiring, app, [name], generation=NEXT)
            )
            try:
                runner.catch_up()
            finally:
                close_runner(runner)
        live_position, scratch_position = live.position(), scratch.position()
        if live_position == scratch_position:
            break
    return live_position, scratch_position
