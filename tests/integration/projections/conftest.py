"""Fixtures of the read-model tests: a scripted history recorded through the real
application, and read models projected from it, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Channel, Kind
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.service import catch_up
from projections.views import SqlView
from projections.wiring import close_view, open_views

DAY_ZERO = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    return DAY_ZERO + timedelta(days=n)


class History:
    """Records touchpoints as upstream would send them: ``history("c1", "purchase", 3,
    amount="10")`` records a purchase three days after DAY_ZERO."""

    def __init__(self, app: LifecycleApplication) -> None:
        self.app = app
        self._ids = itertools.count(1)

    def touchpoint(
        self,
        customer: str,
        kind: str,
        at: float,
        *,
        channel: str = "email",
        event_id: str | None = None,
        **attributes: Any,
    ) -> Touchpoint:
        if kind == "purchase":
            attributes.setdefault("currency", "EUR")
        return Touchpoint(
            event_id=event_id or f"e{next(self._ids)}",
            customer_id=customer,
            kind=Kind(kind),
            channel=Channel(channel),
            occurred_at=day(at),
            producer="test",
            attributes=attributes,
        )

    def __call__(self, customer: str, kind: str, at: float, **options: Any) -> str:
        touchpoint = self.touchpoint(customer, kind, at, **options)
        self.app.record_batch([touchpoint])
        return touchpoint.event_id

    def batch(self, touchpoints: Sequence[Touchpoint]) -> None:
        self.app.record_batch(list(touchpoints))


@pytest.fixture
def history(app: LifecycleApplication) -> History:
    return History(app)


def read_model_dumps(settings: Settings) -> dict[str, Any]:
    """Every read model's rows as its view dumps them, from views opened for the reading:
    what a rebuild or a second runner must leave equal."""
    views = open_views(Components(settings))
    try:
        return {name: view.dump() for name, view in views.items()}
    finally:
        for view in views.values():
            close_view(view)


Project = Callable[..., dict[str, Any]]


@pytest.fixture
def project(settings: Settings, app: LifecycleApplication) -> Iterator[Project]:
    """Catch the read models up with the log and return their (live) views."""
    opened: list[SqlView] = []

    def run(names: Sequence[str] | None = None) -> dict[str, Any]:
        catch_up(Components(settings), names, app=app)
        views = open_views(Components(settings), names)
        opened.extend(views.values())
        return views

    yield run
    for view in opened:
        close_view(view)
