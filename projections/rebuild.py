"""Rebuilding read models (``lifecycle replay``): from position zero into fresh
(``__next``) tables while the live ones keep serving, then each swapped in atomically.

A rebuild is CPU-bound Python, so it is shared between processes, one per core by
default (``LIFECYCLE_PROJECTION_REBUILD_WORKERS``): this one and spawned workers. The
customers are split into as many shards (``projections.shards``: by their
relationship's id, so evenly), and each process folds every read model named for the
events of its shard only: it reads the whole log but decodes only its shard's events.
That is sound because every row of every read model belongs to one customer, and the
few tables summed over customers (funnel transitions, category counts, …) are written as
increments. Each shard tracks its own position in the next tables; every shard stops at
the log's head as it was when the rebuild began, so they end at one position, which the
swap checks and moves to the live tables. Shards take turns writing (SQLite's write
lock, waited for; an advisory lock on PostgreSQL), which they seldom need: a rebuild
writes when a read model holds its bound of rows, tasks or cases, and at the end.

Failure policy: nothing is swapped in until every shard is rebuilt, so a failed rebuild
leaves the live tables serving as before (its ``__next`` tables are dropped by the next
rebuild). A worker that fails (a bug, a poison event, a lost database) stops the others
and the rebuild raises ``RebuildFailed`` naming the shard and the reason; a worker
killed from outside is reported the same way.

Sharing the customers between processes (``run_in_shards``) serves any job that reads
the log shard by shard, not only read models: ``projections.whatif`` replays the log
under two policies with it.
"""

from __future__ import annotations

import contextlib
import functools
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import structlog

from lifecycle.logs import configure_logging
from lifecycle.service.application import LifecycleApplication
from lifecycle.service.processes import ShardFailed, run_in_processes
from projections.shards import Shard
from projections.views import NEXT, SqlView
from projections.wiring import (
    Wiring,
    build_runner,
    close_runner,
    close_view,
    read_model_classes,
)

log = structlog.get_logger(__name__)

EVENTS_PER_WORKER = 200_000
"""Events in the log per worker process, at least: starting a worker costs about what
folding this many events in an existing one does."""


class RebuildFailed(ShardFailed):
    """A shard of a rebuild (or of another job run in shards) failed; nothing was
    swapped in."""


T_co = TypeVar("T_co", covariant=True)
T = TypeVar("T")


class ShardJob(Protocol[T_co]):
    """What each shard of a job run in shards does: read the log up to ``head`` for the
    customers of ``shard``, with ``application``, telling ``advance`` how many events of
    the log it got through; its outcome goes back to the process that started the job.
    It must pickle to reach a worker: a module-level function, or a partial of one."""

    def __call__(
        self,
        wiring: Wiring,
        shard: Shard,
        head: int,
        advance: Callable[[int], None] | None,
        application: LifecycleApplication,
    ) -> T_co: ...


@dataclass(frozen=True)
class ShardOutcome:
    """What one process rebuilt: its shard of the customers, for every read model."""

    shard: Shard
    events: int
    """Events it folded (those of its customers)."""
    seconds: float
    peak_rss_bytes: int


@dataclass(frozen=True)
class RebuildOutcome:
    positions: dict[str, int | None]
    events: int
    """The position of the log rebuilt up to: the events it holds."""
    seconds: float
    shards: tuple[ShardOutcome, ...]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def peak_rss_bytes(self) -> int:
        """Peak memory of the processes that rebuilt, added up (an upper bound of what
        they held at once)."""
        return sum(shard.peak_rss_bytes for shard in self.shards)


def rebuild(
    wiring: Wiring,
    names: Sequence[str] | None = None,
    *,
    advance: Callable[[int], None] | None = None,
    app: LifecycleApplication | None = None,
    workers: int | None = None,
) -> RebuildOutcome:
    """Rebuild the named read models (all by default) from position zero into fresh
    tables, then swap each in atomically.

    ``workers``: processes to share the rebuild between (default: the setting, fewer
    for a short log; 1 rebuilds in this process, reading with ``app`` if given).
    ``advance`` is told how many events of the log every shard has got through since it
    was last told."""
    application = app or wiring.application()
    live_views = {model.name: wiring.open_view(model) for model in read_model_classes(names)}
    try:
        with contextlib.ExitStack() as held:
            for view in live_views.values():
                held.enter_context(view.rebuilding())
            return _rebuild_locked(wiring, live_views, application, advance, workers)
    finally:
        for view in live_views.values():
            close_view(view)
        if app is None:
            application.close()


def _rebuild_locked(
    wiring: Wiring,
    live_views: dict[str, SqlView],
    application: LifecycleApplication,
    advance: Callable[[int], None] | None,
    workers: int | None,
) -> RebuildOutcome:
    names = list(live_views)
    for view in live_views.values():
        view.drop_next()
    # The next tables exist before the shards start: concurrent DDL fails on PostgreSQL.
    for model in read_model_classes(names):
        close_view(wiring.open_view(model, NEXT))
    head = application.recorder.max_notification_id() or 0
    started = time.perf_counter()
    outcomes = run_in_shards(
        wiring,
        functools.partial(_rebuild_shard, names),
        workers or shards_for(wiring, head),
        head,
        advance,
        application,
    )
    seconds = time.perf_counter() - started
    positions: dict[str, int | None] = {}
    for name, view in live_views.items():
        positions[name] = view.swap_in_next()
        log.info("projection_rebuilt", projection=name, position=positions[name])
    return RebuildOutcome(
        positions=positions,
        events=max((position or 0 for position in positions.values()), default=0),
        seconds=seconds,
        shards=tuple(outcomes),
    )


def shards_for(wiring: Wiring, head: int) -> int:
    """How many shards a job over a log of ``head`` events is shared between: the
    setting, fewer for a short log."""
    return min(wiring.settings.projection_rebuild_workers, 1 + head // EVENTS_PER_WORKER)


def _rebuild_shard(
    names: Sequence[str],
    wiring: Wiring,
    shard: Shard,
    head: int,
    advance: Callable[[int], None] | None,
    application: LifecycleApplication,
) -> ShardOutcome:
    """Rebuild ``names`` for one shard of the customers, up to ``head``, in this process
    (no swap)."""
    runner = build_runner(wiring, application, names, generation=NEXT, shard=shard, stop_at=head)
    try:
        started = time.perf_counter()
        runner.catch_up(advance)
        folded = max((lane.events_projected for lane in runner.lanes), default=0)
        return ShardOutcome(shard, folded, time.perf_counter() - started, peak_rss_bytes())
    finally:
        close_runner(runner)


def run_in_shards(
    wiring: Wiring,
    job: ShardJob[T],
    count: int,
    head: int,
    advance: Callable[[int], None] | None,
    application: LifecycleApplication,
) -> list[T]:
    """``job`` for each of ``count`` shards of the customers, up to ``head``: shard 0 in
    this process with ``application``, each other shard in a spawned worker process with
    a log reader of its own; the outcomes in shard order. ``advance`` is told how many
    events of the log every shard has got through since it was last told."""
    return run_in_processes(
        count,
        lambda index, count, read: job(wiring, Shard(index, count), head, read, application),
        functools.partial(_in_worker, wiring, job, head),
        advance,
        failed=RebuildFailed,
    )


def _in_worker(
    wiring: Wiring,
    job: ShardJob[T],
    head: int,
    index: int,
    count: int,
    advance: Callable[[int], None],
) -> T:
    configure_logging(wiring.settings.log_format, wiring.settings.log_level)
    with contextlib.closing(wiring.log_reader()) as reader:
        return job(wiring, Shard(index, count), head, advance, reader)


def peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM on Linux: ``ru_maxrss`` of a spawned
    process would include what its parent held before exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
