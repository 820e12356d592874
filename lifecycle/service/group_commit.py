"""Group commit: ``record_batch`` for many threads at once (the HTTP API's requests).

Each batch is a transaction, and on SQLite a transaction's commit waits for the disk
(several milliseconds): requests that each recorded their own touchpoints one commit at a
time would queue behind one another's commits. So the requests that arrive while a batch
is being written wait for it, then one of them (the leader) records all their
touchpoints as one batch, in arrival order, and hands each request its statuses: one
commit for all of them. Under a light load every request is its own group; under a heavy
one, groups grow and the commits per second stay what the disk allows.

Every request's touchpoints are recorded whole in one transaction with the others of its
group; an error (a conflict that kept coming back) fails every request of the group, and
none of them was recorded. ``position`` is the log position of the group's last event
written: at least that of the request's own events, so it serves as ``min_position``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.service.application import LifecycleApplication


@dataclass(frozen=True)
class Recorded:
    statuses: list[str]
    """``recorded`` or ``duplicate``, one per touchpoint given, in order."""
    position: int | None
    """The log position of the group's last event written (None: nothing written)."""


@dataclass
class _Waiting:
    touchpoints: Sequence[Touchpoint]
    done: threading.Event = field(default_factory=threading.Event)
    recorded: Recorded | None = None
    error: BaseException | None = None


class GroupCommit:
    def __init__(self, application: LifecycleApplication) -> None:
        self.application = application
        self._pending: list[_Waiting] = []
        self._pending_lock = threading.Lock()
        self._writing = threading.Lock()

    def record(self, touchpoints: Sequence[Touchpoint]) -> Recorded:
        """Record ``touchpoints`` in a group with those of the threads waiting meanwhile."""
        waiting = _Waiting(touchpoints)
        with self._pending_lock:
            self._pending.append(waiting)
        with self._writing:
            if not waiting.done.is_set():  # no leader took it: lead the next group
                with self._pending_lock:
                    group, self._pending = self._pending, []
                self._record_group(group)
        if waiting.error is not None:
            raise waiting.error
        assert waiting.recorded is not None
        return waiting.recorded

    def _record_group(self, group: list[_Waiting]) -> None:
        try:
            outcome = self.application.record_batch(
                [touchpoint for waiting in group for touchpoint in waiting.touchpoints]
            )
        except BaseException as error:
            for waiting in group:
                waiting.error = error
                waiting.done.set()
            return
        start = 0
        for waiting in group:
            end = start + len(waiting.touchpoints)
            waiting.recorded = Recorded(outcome.statuses[start:end], outcome.position)
            waiting.done.set()
            start = end
