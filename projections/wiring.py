"""What the read side needs wired, and the read models it knows.

The composition root (``lifecycle.entrypoints.bootstrap.Components``) builds the
infrastructure: the application reading the log and the views of the read models, on
the configured store. The read side asks for them through ``Wiring``, so that it never
builds a store itself and the same wiring reaches a rebuild's worker processes (it
pickles: it is the settings and nothing open).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from lifecycle.domain.errors import LifecycleError
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.follow_ups import FollowUps
from projections.funnel import Funnel
from projections.names import READ_MODEL_NAMES
from projections.pairs import Complaints, Inquiries
from projections.predictions import PredictionsView
from projections.purchases import Purchases
from projections.readmodel import ReadModel
from projections.runner import DEFAULT_COMMIT_SECONDS, Runner
from projections.shards import WHOLE_LOG, Shard
from projections.summary import Summary
from projections.views import LIVE, SqlView

READ_MODELS: tuple[type[ReadModel[Any]], ...] = (
    Summary,
    Funnel,
    Complaints,
    Inquiries,
    FollowUps,
    Purchases,
)


class UnknownProjection(LifecycleError):
    code = "unknown_projection"


def read_model_classes(names: Iterable[str] | None = None) -> list[type[ReadModel[Any]]]:
    """The read models named (all of them when ``names`` is empty or None), in order."""
    wanted = list(names or ())
    unknown = [name for name in wanted if name not in READ_MODEL_NAMES]
    if unknown:
        raise UnknownProjection(
            f"unknown projection {unknown[0]!r}: choose from {', '.join(READ_MODEL_NAMES)}"
        )
    return [model for model in READ_MODELS if not wanted or model.name in wanted]


class Wiring(Protocol):
    """What the read side asks the composition root for."""

    @property
    def settings(self) -> Settings:
        """Sizes and intervals of the read side, and logging of its worker processes."""
        ...

    def application(self) -> LifecycleApplication:
        """The application, to read its log and, for auditors, its aggregates."""
        ...

    def log_reader(self) -> LifecycleApplication:
        """The application, to read its log only (no tables created, no key store)."""
        ...

    def open_view(
        self, model: type[ReadModel[Any]], generation: str = LIVE, shard: Shard = WHOLE_LOG
    ) -> SqlView:
        """The view of ``model`` (its tables created if missing); in the next generation,
        of one ``shard`` of a rebuild."""
        ...

    def predictions_view(self) -> PredictionsView:
        """Where the analytics models' predictions and latest validation are kept."""
        ...


def open_views(wiring: Wiring, names: Iterable[str] | None = None) -> dict[str, SqlView]:
    return {model.name: wiring.open_view(model) for model in read_model_classes(names)}


def close_view(view: SqlView) -> None:
    view.datastore.close()  # type: ignore[attr-defined]


def build_runner(
    wiring: Wiring,
    app: LifecycleApplication,
    names: Sequence[str] | None = None,
    *,
    generation: str = LIVE,
    batch_size: int | None = None,
    shard: Shard = WHOLE_LOG,
    stop_at: int | None = None,
) -> Runner:
    """A runner of the named read models (all by default) over ``app``'s event log.

    A rebuild (generation NEXT) starts from zero whatever happens, so committing on the
    way would buy nothing: it commits when the rows held reach their bound, or at the end.
    """
    settings = wiring.settings
    models = [
        model(view=wiring.open_view(model, generation, shard))
        for model in read_model_classes(names)
    ]
    return Runner(
        app.recorder,
        app.mapper,
        models,
        application_name=app.name,
        page_size=settings.projection_page_size,
        batch_size=(batch_size or settings.projection_batch_size) if generation == LIVE else None,
        commit_seconds=DEFAULT_COMMIT_SECONDS if generation == LIVE else None,
        live=generation == LIVE,
        shard=shard,
        stop_at=stop_at,
    )


def close_runner(runner: Runner) -> None:
    for lane in runner.lanes:
        close_view(lane.model.view)
