"""The read side's part of the composition root: read models, their views and runners,
built from settings. Every command and service of the read side starts here."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, cast

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from lifecycle.application import LifecycleApplication
from lifecycle.errors import LifecycleError
from lifecycle.settings import Settings
from lifecycle.store import Store
from projections.complaints import Complaints
from projections.follow_ups import FollowUps
from projections.funnel import Funnel
from projections.inquiries import Inquiries
from projections.purchases import Purchases
from projections.readmodel import ReadModel
from projections.runner import DEFAULT_COMMIT_SECONDS, Runner
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
READ_MODEL_NAMES = tuple(model.name for model in READ_MODELS)

PARTS_WAIT_SECONDS = 600
"""How long a part of a rebuild waits for another part's write transaction (SQLite)."""


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


def view_env(settings: Settings, name: str) -> dict[str, str]:
    """eventsourcing's environment for the view of read model ``name``: on SQLite its own
    file beside the main one (``lifecycle.<name>.db``), on PostgreSQL the shared database."""
    store = Store.from_url(settings.database_url)
    return {
        **store.persistence_env(name),
        # Tables are created by the view once its generation is chosen.
        "CREATE_TABLE": "n",
        "POSTGRES_POOL_SIZE": str(settings.projection_pool_size),
    }


def open_view(
    settings: Settings, model: type[ReadModel[Any]], generation: str = LIVE, partition: str = ""
) -> SqlView:
    """The view of ``model`` (its tables created if missing), on the configured backend."""
    env = {**os.environ, **view_env(settings, model.name)}
    if partition:
        # The parts of a rebuild take turns writing the same tables: wait for each other.
        env["SQLITE_LOCK_TIMEOUT"] = str(PARTS_WAIT_SECONDS)
    factory = InfrastructureFactory.construct(Environment(model.name, env))
    backend = "sqlite" if Store.from_url(settings.database_url).is_sqlite else "postgres"
    view = cast(SqlView, factory.tracking_recorder(model.view_classes[backend]))
    view.use_generation(generation, partition)
    view.create_table()
    return view


def open_views(settings: Settings, names: Iterable[str] | None = None) -> dict[str, SqlView]:
    return {model.name: open_view(settings, model) for model in read_model_classes(names)}


def close_view(view: SqlView) -> None:
    view.datastore.close()  # type: ignore[attr-defined]


def build_runner(
    settings: Settings,
    app: LifecycleApplication,
    names: Sequence[str] | None = None,
    *,
    generation: str = LIVE,
    batch_size: int | None = None,
    partition: tuple[int, int] | None = None,
    stop_at: int | None = None,
) -> Runner:
    """A runner of the named read models (all by default) over ``app``'s event log.

    A rebuild (generation NEXT) starts from zero whatever happens, so committing on the
    way would buy nothing: it commits when the rows held reach their bound, or at the end.
    """
    part = f":{partition[0]}/{partition[1]}" if partition and partition[1] > 1 else ""
    models = [
        model(view=open_view(settings, model, generation, part))
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
        partition=partition,
        stop_at=stop_at,
    )


def close_runner(runner: Runner) -> None:
    for lane in runner.lanes:
        close_view(lane.model.view)
