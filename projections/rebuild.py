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
import multiprocessing
import queue
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import structlog

from lifecycle.logs import configure_logging
from lifecycle.service.application import LifecycleApplication
from projections.shards import WHOLE_LOG, Shard
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


class RebuildFailed(Exception):
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
    if count == 1:
        return [job(wiring, WHOLE_LOG, head, advance, application)]
    # Spawned, not forked: a fork would share this process's open database connections.
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue[tuple[str, int, Any]] = context.Queue()
    workers = {
        index: context.Process(
            target=_worker,
            args=(wiring, job, Shard(index, count), head, messages),
            name=f"shard-{index}",
            daemon=True,
        )
        for index in range(1, count)
    }
    for worker in workers.values():
        worker.start()
    heard: _Shards[T] = _Shards(count, workers, messages, advance)
    try:
        heard.outcomes[0] = job(wiring, Shard(0, count), head, heard.read_here, application)
        while len(heard.outcomes) < count:
            heard.receive(timeout=0.5)
    finally:
        for worker in workers.values():
            if worker.is_alive() and len(heard.outcomes) < count:
                worker.terminate()
            worker.join()
    return [heard.outcomes[index] for index in range(count)]


class _Shards(Generic[T]):
    """What the shards of a job have done, as this process and the workers' messages
    tell; a failed worker is raised as ``RebuildFailed``."""

    def __init__(
        self,
        count: int,
        workers: dict[int, SpawnProcess],
        messages: multiprocessing.Queue[tuple[str, int, Any]],
        advance: Callable[[int], None] | None,
    ) -> None:
        self.workers, self.messages, self.advance = workers, messages, advance
        self.outcomes: dict[int, T] = {}
        self.reads = [0] * count
        self.told = 0

    def read_here(self, events: int) -> None:
        """This process's shard got through ``events`` more: hear from the workers too
        (without waiting), so a failed one stops the rebuild now."""
        self._read(0, events)
        while self.receive(timeout=None):
            pass

    def receive(self, timeout: float | None) -> bool:
        """Take one message (waiting up to ``timeout``; None: not at all); whether there
        was one."""
        try:
            if timeout is None:
                kind, index, payload = self.messages.get_nowait()
            else:
                kind, index, payload = self.messages.get(timeout=timeout)
        except queue.Empty:
            self._check_workers()
            return False
        if kind == "read":
            self._read(index, payload)
        elif kind == "done":
            self.outcomes[index] = payload
        else:
            raise RebuildFailed(f"shard {index} failed: {payload}")
        return True

    def _read(self, index: int, events: int) -> None:
        self.reads[index] += events
        least = min(self.reads)
        if self.advance is not None and least > self.told:
            self.advance(least - self.told)
            self.told = least

    def _check_workers(self) -> None:
        for index, worker in self.workers.items():
            if index not in self.outcomes and worker.exitcode is not None:
                raise RebuildFailed(
                    f"shard {index} failed: its worker exited with code {worker.exitcode}"
                )


def _worker(
    wiring: Wiring,
    job: ShardJob[Any],
    shard: Shard,
    head: int,
    messages: multiprocessing.Queue[tuple[str, int, Any]],
) -> None:
    configure_logging(wiring.settings.log_format, wiring.settings.log_level)
    index = shard.index
    reader: LifecycleApplication | None = None
    try:
        reader = wiring.log_reader()
        outcome = job(wiring, shard, head, lambda n: messages.put(("read", index, n)), reader)
    except BaseException as error:
        log.exception("shard_failed", shard=index, job=repr(job))
        messages.put(("failed", index, f"{type(error).__name__}: {error}"))
        sys.exit(1)
    finally:
        if reader is not None:
            reader.close()
    messages.put(("done", index, outcome))


def peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM on Linux: ``ru_maxrss`` of a spawned
    process would include what its parent held before exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
