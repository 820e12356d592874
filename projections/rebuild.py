"""Rebuilding read models (``lifecycle replay``): from position zero into fresh
(``__next``) tables while the live ones keep serving, then each swapped in atomically.

Read models share nothing but the event log, and a rebuild is CPU-bound Python, so a
rebuild of several read models shares them between processes, one per core by default
(``LIFECYCLE_PROJECTION_REBUILD_WORKERS``): this one and spawned workers. Each reads
and decodes the log itself (touchpoints none of its read models folds are not decoded)
and folds its share; shares are balanced by each read model's ``rebuild_cost``.
Reading the log once per process costs less than leaving a core idle.

Failure policy: nothing is swapped in until every share is rebuilt, so a failed rebuild
leaves the live tables serving as before (its ``__next`` tables are dropped by the next
rebuild). A worker that fails (a bug, a poison event, a lost database) stops the others
and the rebuild raises ``RebuildFailed`` naming its read models and the reason; a worker
killed from outside is reported the same way.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

import structlog

from lifecycle.application import LifecycleApplication
from lifecycle.bootstrap import build_application, build_log_reader
from lifecycle.logs import configure_logging
from lifecycle.settings import Settings
from projections.bootstrap import (
    build_runner,
    close_runner,
    close_view,
    open_view,
    read_model_classes,
)
from projections.readmodel import ReadModel
from projections.views import NEXT, SqlView

log = structlog.get_logger(__name__)


EVENTS_PER_WORKER = 200_000
"""Events in the log per worker process, at least: starting a worker costs about what
folding this many events in an existing one does."""


class RebuildFailed(Exception):
    """A share of a rebuild failed; nothing was swapped in."""


@dataclass(frozen=True)
class ShareOutcome:
    """What one worker (or the one process) rebuilt."""

    names: tuple[str, ...]
    events: int
    seconds: float
    peak_rss_bytes: int


@dataclass(frozen=True)
class RebuildOutcome:
    positions: dict[str, int | None]
    events: int
    """The position of the log rebuilt up to: the events it holds."""
    seconds: float
    shares: tuple[ShareOutcome, ...]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def peak_rss_bytes(self) -> int:
        """Peak memory of the processes that rebuilt, added up (an upper bound of what
        they held at once)."""
        return sum(share.peak_rss_bytes for share in self.shares)


READ_ALL_COST = 11.3
READ_SOME_COST = 7.0
"""CPU seconds a share spends reading a million events of the log, in the units of
``ReadModel.rebuild_cost``: decoding every touchpoint (some read model folds every
kind) or only those its read models fold (as measured by ``bench.projections``)."""


def share_cost(share: Sequence[type[ReadModel[Any]]]) -> float:
    reads_all = any(model.touchpoint_kinds is None for model in share)
    return (READ_ALL_COST if reads_all else READ_SOME_COST) + sum(
        model.rebuild_cost for model in share
    )


def balanced_shares(
    models: Sequence[type[ReadModel[Any]]], workers: int
) -> list[list[type[ReadModel[Any]]]]:
    """The read models split into at most ``workers`` shares whose costliest share
    costs least (every split is tried: there are a handful of read models); each share
    keeps list order, the costliest share first."""
    best: list[list[type[ReadModel[Any]]]] = [list(models)]
    for split in _splits(list(models), max(1, workers)):
        if max(map(share_cost, split)) < max(map(share_cost, best)):
            best = split
    return sorted(best, key=share_cost, reverse=True)


def _splits(models: list[Any], most: int) -> Iterator[list[list[Any]]]:
    """Every way to split ``models`` into at most ``most`` non-empty shares."""
    if not models:
        yield []
        return
    first, rest = models[0], models[1:]
    for split in _splits(rest, most):
        for index in range(len(split)):
            yield [*split[:index], [first, *split[index]], *split[index + 1 :]]
        if len(split) < most:
            yield [[first], *split]


def rebuild(
    settings: Settings,
    names: Sequence[str] | None = None,
    *,
    advance: Callable[[int], None] | None = None,
    app: LifecycleApplication | None = None,
    workers: int | None = None,
) -> RebuildOutcome:
    """Rebuild the named read models (all by default) from position zero into fresh
    tables, then swap each in atomically.

    ``workers``: processes to share the read models between (default: the setting,
    fewer for a short log; 1 rebuilds in this process, reading with ``app`` if given).
    ``advance`` is told how many events of the log every share has got through since
    it was last told."""
    classes = read_model_classes(names)
    application = app or build_application(settings)
    live_views = {model.name: open_view(settings, model) for model in classes}
    try:
        with contextlib.ExitStack() as held:
            for view in live_views.values():
                held.enter_context(view.rebuilding())
            return _rebuild_locked(settings, classes, live_views, application, advance, workers)
    finally:
        for view in live_views.values():
            close_view(view)
        if app is None:
            application.close()


def _rebuild_locked(
    settings: Settings,
    classes: Sequence[type[ReadModel[Any]]],
    live_views: dict[str, SqlView],
    application: LifecycleApplication,
    advance: Callable[[int], None] | None,
    workers: int | None,
) -> RebuildOutcome:
    for view in live_views.values():
        view.drop_next()
    if workers is None:
        head = application.recorder.max_notification_id() or 0
        workers = min(settings.projection_rebuild_workers, 1 + head // EVENTS_PER_WORKER)
    shares = balanced_shares(classes, workers)
    started = time.perf_counter()
    if len(shares) == 1:
        outcomes = [_rebuild_share(settings, [m.name for m in shares[0]], advance, application)]
    else:
        outcomes = _rebuild_in_workers(
            settings, [[m.name for m in s] for s in shares], advance, application
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
        shares=tuple(outcomes),
    )


def _rebuild_share(
    settings: Settings,
    names: Sequence[str],
    advance: Callable[[int], None] | None,
    app: LifecycleApplication | None = None,
) -> ShareOutcome:
    """Rebuild ``names`` into their next generation in this process (no swap)."""
    application = app or build_application(settings)
    runner = build_runner(settings, application, names, generation=NEXT)
    try:
        started = time.perf_counter()
        runner.catch_up(advance)
        return ShareOutcome(
            tuple(names), runner.read_count, time.perf_counter() - started, peak_rss_bytes()
        )
    finally:
        close_runner(runner)
        if app is None:
            application.close()


def _rebuild_in_workers(
    settings: Settings,
    shares: list[list[str]],
    advance: Callable[[int], None] | None,
    application: LifecycleApplication,
) -> list[ShareOutcome]:
    """The first share in this process, each other one in a worker process."""
    # Spawned, not forked: a fork would share this process's open database connections.
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue[tuple[str, int, Any]] = context.Queue()
    workers = {
        index: context.Process(
            target=_worker,
            args=(settings, names, index, messages),
            name=f"rebuild-{'+'.join(names)}",
            daemon=True,
        )
        for index, names in enumerate(shares)
        if index > 0
    }
    for worker in workers.values():
        worker.start()
    shared = _Shares(shares, workers, messages, advance)
    try:
        shared.outcomes[0] = _rebuild_share(settings, shares[0], shared.read_here, application)
        while len(shared.outcomes) < len(shares):
            shared.receive(timeout=0.5)
    finally:
        for worker in workers.values():
            if worker.is_alive() and len(shared.outcomes) < len(shares):
                worker.terminate()
            worker.join()
    return [shared.outcomes[index] for index in range(len(shares))]


class _Shares:
    """What the shares of a rebuild have done, as this process and the workers' messages
    tell; a failed worker is raised as ``RebuildFailed``."""

    def __init__(
        self,
        shares: list[list[str]],
        workers: dict[int, SpawnProcess],
        messages: multiprocessing.Queue[tuple[str, int, Any]],
        advance: Callable[[int], None] | None,
    ) -> None:
        self.shares, self.workers, self.messages, self.advance = shares, workers, messages, advance
        self.outcomes: dict[int, ShareOutcome] = {}
        self.reads = [0] * len(shares)
        self.told = 0

    def read_here(self, events: int) -> None:
        """This process's share got through ``events`` more: hear from the workers too
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
            raise RebuildFailed(f"rebuilding {', '.join(self.shares[index])} failed: {payload}")
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
                    f"rebuilding {', '.join(self.shares[index])} failed: its worker exited "
                    f"with code {worker.exitcode}"
                )


def _worker(
    settings: Settings,
    names: list[str],
    index: int,
    messages: multiprocessing.Queue[tuple[str, int, Any]],
) -> None:
    configure_logging(settings.log_format, settings.log_level)
    reader: LifecycleApplication | None = None
    try:
        reader = build_log_reader(settings)
        outcome = _rebuild_share(
            settings, names, lambda n: messages.put(("read", index, n)), reader
        )
    except BaseException as error:
        log.exception("projection_rebuild_failed", projections=names)
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
