"""One job shared between processes by shards of the customers: shard 0 in this
process, every other shard in a spawned process of its own, each told which shard of
how many it is.

This is how CPU-bound work uses more than one core: a rebuild of the read models
(``projections.rebuild``) and an import (``lifecycle.service.importer``) split the
customers into shards, so that no two processes write one relationship. The shards
report their progress as they go; the caller's ``advance`` hears how far every shard has
got (the least of them), so one progress bar stands for all. A shard that fails (an
exception, or a process killed from outside) stops the job: the others are terminated
and the caller gets one exception naming the shard and the reason. A worker whose
starting process is gone (killed) stops at its next report of progress.
"""

from __future__ import annotations

import os
import queue
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    import multiprocessing
    from multiprocessing.context import SpawnProcess

T_co = TypeVar("T_co", covariant=True)
T = TypeVar("T")


class ShardFailed(Exception):
    """A shard of a job shared between processes failed. The command line answers it
    with its message on one line (exit status 1), so this module imports what runs the
    job only when it runs one: the command line's start-up stays light."""


class ShardedJob(Protocol[T_co]):
    """Shard ``index`` of ``count``, telling ``advance`` how much it got through since it
    last told; its outcome goes back to the process that started the job. What runs in
    a worker must pickle: a module-level function, or a partial of one."""

    def __call__(self, index: int, count: int, advance: Callable[[int], None]) -> T_co: ...


def run_in_processes(
    count: int,
    here: ShardedJob[T],
    there: ShardedJob[T],
    advance: Callable[[int], None] | None = None,
    failed: type[Exception] = ShardFailed,
) -> list[T]:
    """``here`` as shard 0 in this process and ``there`` as each other shard in a
    spawned worker; the outcomes in shard order. A failed shard is raised as ``failed``."""
    if count == 1:
        return [here(0, 1, advance or _ignore)]
    import multiprocessing

    # Spawned, not forked: a fork would share this process's open database connections.
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue[tuple[str, int, Any]] = context.Queue()
    workers = {
        index: context.Process(
            target=_worker,
            args=(there, index, count, messages, os.getpid()),
            name=f"shard-{index}",
            daemon=True,
        )
        for index in range(1, count)
    }
    for worker in workers.values():
        worker.start()
    heard: _Shards[T] = _Shards(count, workers, messages, advance, failed)
    try:
        heard.outcomes[0] = here(0, count, heard.read_here)
        while len(heard.outcomes) < count:
            heard.receive(timeout=0.5)
    finally:
        for worker in workers.values():
            if worker.is_alive() and len(heard.outcomes) < count:
                worker.terminate()
            worker.join()
    return [heard.outcomes[index] for index in range(count)]


def _ignore(_advanced: int) -> None:
    pass


class _Shards(Generic[T]):
    """What the shards of a job have done, as this process and the workers' messages
    tell."""

    def __init__(
        self,
        count: int,
        workers: dict[int, SpawnProcess],
        messages: multiprocessing.Queue[tuple[str, int, Any]],
        advance: Callable[[int], None] | None,
        failed: type[Exception],
    ) -> None:
        self.workers, self.messages, self.advance = workers, messages, advance
        self.failed = failed
        self.outcomes: dict[int, T] = {}
        self.reads = [0] * count
        self.told = 0

    def read_here(self, advanced: int) -> None:
        """This process's shard got through ``advanced`` more: hear from the workers too
        (without waiting), so a failed one stops the job now."""
        self._read(0, advanced)
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
            raise self.failed(f"shard {index} failed: {payload}")
        return True

    def _read(self, index: int, advanced: int) -> None:
        self.reads[index] += advanced
        least = min(self.reads)
        if self.advance is not None and least > self.told:
            self.advance(least - self.told)
            self.told = least

    def _check_workers(self) -> None:
        for index, worker in self.workers.items():
            if index not in self.outcomes and worker.exitcode is not None:
                raise self.failed(
                    f"shard {index} failed: its worker exited with code {worker.exitcode}"
                )


def _worker(
    job: ShardedJob[Any],
    index: int,
    count: int,
    messages: multiprocessing.Queue[tuple[str, int, Any]],
    parent: int,
) -> None:
    def advance(advanced: int) -> None:
        if os.getppid() != parent:
            # The process that started the job is gone (killed): nobody will take the
            # outcome, and a rerun must not find this shard still writing.
            os._exit(1)
        messages.put(("read", index, advanced))

    try:
        outcome = job(index, count, advance)
    except BaseException as error:
        import structlog

        structlog.get_logger(__name__).exception("shard_failed", shard=index, job=repr(job))
        messages.put(("failed", index, f"{type(error).__name__}: {error}"))
        sys.exit(1)
    messages.put(("done", index, outcome))
