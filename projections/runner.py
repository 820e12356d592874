"""The projection runner: reads the application's event log a page at a time, decodes
each event once, lets every read model fold it, and commits each read model's rows with
its position in one transaction per batch; then follows the log for new events.

Why not the library's ``ProjectionRunner``: on SQLite the application recorder cannot
subscribe (``NotImplementedError`` in eventsourcing 9.5.6), and its one transaction per
event caps a rebuild at a few hundred events a second. This runner pulls with
``recorder.select_notifications`` on both backends (the ``System``/``Follower`` way),
waking on PostgreSQL's NOTIFY when it can and polling otherwise, and commits a batch of
many events (``batch_size``, or whatever was read when it reaches the head of the log)
with one ``Tracking`` row per read model.

Delivery and error policy:
- Exactly once: rows and position are committed together, and only if the position
  recorded is the one the batch was folded from. A restart (even after ``kill -9``)
  resumes from ``view.max_tracking_id("Lifecycle")``; whatever was folded but not
  committed is folded again.
- A moved position (another runner, a rebuild swapped in) is not an error: the read
  model forgets what it held and resumes from the recorded position.
- Database errors the library calls operational (lost connection, lock timeout) are
  waited out (``lifecycle.faults.retry``: ``database_unavailable`` each second), then
  the step is tried again from the last committed position.
- Any other error is a bug or a poison event: the runner stops and re-raises it,
  naming the position, as the library's runner does. Nothing is marked done that was
  not projected.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from eventsourcing.persistence import ApplicationRecorder, Mapper, Tracking
from eventsourcing.utils import get_topic

from lifecycle.domain.vocabulary import Kind
from lifecycle.faults import Backoff, Stopped, is_database_fault, retry
from lifecycle.persistence.recorders import BulkSQLiteProcessRecorder
from lifecycle.persistence.topics import current_topic, stored_topics
from lifecycle.persistence.transcoding import stored_kinds
from projections import metrics
from projections.readmodel import ReadModel, TouchpointRecorded
from projections.shards import WHOLE_LOG, Shard, shard_of
from projections.views import PositionMoved

log = structlog.get_logger(__name__)

TOUCHPOINT_TOPIC = get_topic(TouchpointRecorded)
TOUCHPOINT_TOPICS = frozenset(stored_topics(TouchpointRecorded))
ALL_KINDS = frozenset(kind.value for kind in Kind)

DEFAULT_PAGE_SIZE = 2_000
DEFAULT_BATCH_SIZE = 20_000
DEFAULT_COMMIT_SECONDS = 1.0
RETRY_BACKOFF = Backoff(initial=1.0, factor=1.0)
_UNKNOWN: Any = object()


@dataclass
class Lane:
    """One read model inside a runner, with the positions it has committed and read."""

    model: ReadModel[Any]
    committed: int | None = None
    read: int = 0
    events_projected: int = 0
    topics: frozenset[str] = field(init=False)
    accepts: frozenset[str] | None = field(init=False)
    """The event topics, and for touchpoints the kinds, this read model folds (None:
    everything)."""

    def __post_init__(self) -> None:
        self.topics = frozenset(self.model.topics)
        kinds = self.model.touchpoint_kinds
        if not self.topics:
            self.accepts = None
        else:
            current = frozenset(current_topic(topic) for topic in self.topics)
            self.accepts = current - {TOUCHPOINT_TOPIC}
            if TOUCHPOINT_TOPIC in current:
                self.accepts |= ALL_KINDS if kinds is None else kinds

    @property
    def name(self) -> str:
        return self.model.name

    def resync(self) -> None:
        self.model.reset()
        self.committed = self.model.view.position()
        self.read = self.committed or 0


def _kinds_needed_by(lanes: Sequence[Lane]) -> frozenset[bytes] | None:
    """The touchpoint kinds some read model of ``lanes`` folds, as stored (None: all)."""
    needed: set[str] = set()
    for lane in lanes:
        if lane.accepts is None:
            return None
        needed |= lane.accepts & ALL_KINDS
    return None if needed >= ALL_KINDS else frozenset(kind.encode() for kind in needed)


@dataclass(frozen=True)
class LaneStatus:
    name: str
    position: int
    head: int

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


class Runner:
    """Runs read models over one application's event log."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        mapper: Mapper[Any],
        models: Sequence[ReadModel[Any]],
        *,
        application_name: str,
        page_size: int = DEFAULT_PAGE_SIZE,
        batch_size: int | None = DEFAULT_BATCH_SIZE,
        commit_seconds: float | None = DEFAULT_COMMIT_SECONDS,
        live: bool = True,
        shard: Shard = WHOLE_LOG,
        stop_at: int | None = None,
    ) -> None:
        self.recorder = recorder
        self.mapper = mapper
        self.application_name = application_name
        self.page_size = page_size
        self.batch_size = batch_size
        self.commit_seconds = commit_seconds
        self.live = live
        """Whether positions and lag go to the metrics (not for a rebuild's generation)."""
        self.shard = shard
        """Fold only the events of this shard's customers (a rebuild shared between
        processes); by default the whole log."""
        self.stop_at = stop_at
        """Project the log up to this position only (a rebuild: what was there when it
        started, the same for every shard of it)."""
        self.lanes = [Lane(model) for model in models]
        self._needed_kinds = _kinds_needed_by(self.lanes)
        self._shard_digits = (
            shard.hex_digits if isinstance(recorder, BulkSQLiteProcessRecorder) else None
        )
        """What the recorder selects this runner's shard of the log by (None: it does not,
        the runner passes over other shards' events itself)."""
        for lane in self.lanes:
            lane.resync()
        self._uncommitted = 0
        self._last_commit = time.monotonic()
        self._head = 0

    # One step --------------------------------------------------------------------------

    def head(self) -> int:
        head = self.recorder.max_notification_id() or 0
        self._head = head if self.stop_at is None else min(head, self.stop_at)
        return self._head

    def step(self) -> int:
        """Read and fold one page; commit when the batch is full, old, or at the head.

        Returns how far along the log it got (0 at the head of the log).
        """
        head = self.head()
        start = min(lane.read for lane in self.lanes)
        if start >= head:
            self._commit_if_pending()
            return 0
        topics = self._topics()
        if self._shard_digits is not None:
            assert isinstance(self.recorder, BulkSQLiteProcessRecorder)
            notifications = self.recorder.select_notifications(
                start + 1, self.page_size, stop=head, topics=topics, shard_digits=self._shard_digits
            )
        else:
            notifications = self.recorder.select_notifications(
                start + 1, self.page_size, stop=head, topics=topics
            )
        end = notifications[-1].id if len(notifications) == self.page_size else head
        self._fold(notifications, end)
        self._uncommitted += len(notifications)
        if end == head or self._batch_is_due():
            self.commit()
        else:
            self.commit([lane for lane in self.lanes if lane.model.wants_commit()])
        return end - start

    def _batch_is_due(self) -> bool:
        return (self.batch_size is not None and self._uncommitted >= self.batch_size) or (
            self.commit_seconds is not None
            and time.monotonic() - self._last_commit >= self.commit_seconds
        )

    def _topics(self) -> list[str]:
        if any(not lane.topics for lane in self.lanes):
            return []
        return sorted(set().union(*(lane.topics for lane in self.lanes)))

    def _fold(self, notifications: Sequence[Any], end: int) -> None:
        """Decode each event once, then let every read model fold those it takes, in
        log order. An event is keyed by its topic, a touchpoint by its kind."""
        to_domain_event: Callable[[Any], Any] = self.mapper.to_domain_event
        app = self.application_name
        wanted = self._topics()
        touchpoints = TOUCHPOINT_TOPICS
        needed_kinds = self._needed_kinds
        passes_over_shards = self._shard_digits is None and not self.shard.is_whole_log
        index, count = self.shard.index, self.shard.count
        keyed = []
        for n in notifications:
            if passes_over_shards and shard_of(n.originator_id, count) != index:
                continue
            topic = n.topic
            if wanted and topic not in wanted:
                continue
            if topic in touchpoints and needed_kinds is not None:
                # Decoding is most of a read: a touchpoint no read model here folds is
                # passed over on what its bytes say its kind is.
                kinds = stored_kinds(n.state)
                if kinds and not any(kind in needed_kinds for kind in kinds):
                    continue
            event = to_domain_event(n)
            key = event.kind if topic in touchpoints else current_topic(topic)
            keyed.append((key, event, Tracking(app, n.id)))
        first = keyed[0][2].notification_id if keyed else end
        for lane in self.lanes:
            if lane.read >= end:
                continue
            accepts = lane.accepts
            if lane.read < first:
                events = [
                    (event, tracking)
                    for key, event, tracking in keyed
                    if accepts is None or key in accepts
                ]
            else:
                events = [
                    (event, tracking)
                    for key, event, tracking in keyed
                    if tracking.notification_id > lane.read and (accepts is None or key in accepts)
                ]
            self._fold_lane(lane, events)
            lane.read = end

    @staticmethod
    def _fold_lane(lane: Lane, events: list[tuple[Any, Tracking]]) -> None:
        model = lane.model
        model.prefetch([event for event, _ in events])
        handlers = model.handlers
        for event, tracking in events:
            handler = handlers.get(type(event), _UNKNOWN)
            if handler is _UNKNOWN:
                handler = model.handler_for(type(event))
            if handler is None:
                continue
            try:
                handler(event, tracking)
            except Exception:
                log.error(
                    "projection_failed",
                    projection=lane.name,
                    position=tracking.notification_id,
                    event_type=type(event).__qualname__,
                )
                raise
        model.pending_events += len(events)
        lane.events_projected += len(events)

    def commit(self, lanes: Sequence[Lane] | None = None) -> None:
        """Commit every read model (of ``lanes``, default all) that read past its
        committed position."""
        if lanes is not None and not lanes:
            return
        for lane in self.lanes if lanes is None else lanes:
            if lane.read == (lane.committed or 0):
                continue
            tracking = Tracking(lane.model.view.tracking_name, lane.read)
            projected = lane.model.pending_events
            try:
                lane.model.commit(tracking, lane.committed)
            except PositionMoved as moved:
                log.warning("projection_position_moved", projection=lane.name, reason=str(moved))
                lane.resync()
                continue
            lane.committed = lane.read
            if self.live:
                metrics.PROJECTION_POSITION.labels(lane.name).set(lane.read)
                metrics.PROJECTION_LAG.labels(lane.name).set(max(self._head - lane.read, 0))
                metrics.PROJECTION_EVENTS.labels(lane.name).inc(projected)
        if lanes is None:
            self._uncommitted = 0
            self._last_commit = time.monotonic()

    def _commit_if_pending(self) -> None:
        if any(lane.read != (lane.committed or 0) for lane in self.lanes):
            self.commit()
        elif self.live:
            for lane in self.lanes:
                metrics.PROJECTION_LAG.labels(lane.name).set(
                    max(self._head - (lane.committed or 0), 0)
                )

    def forget_uncommitted(self) -> None:
        for lane in self.lanes:
            lane.resync()
        self._uncommitted = 0

    # Loops -----------------------------------------------------------------------------

    def catch_up(self, advance: Callable[[int], None] | None = None) -> None:
        """Project every event recorded so far (and any recorded meanwhile), then return.

        The cyclic garbage collector is paused meanwhile: the rows held grow to hundreds
        of thousands of objects, which every full collection would walk again; events and
        rows hold no cycles, so reference counting frees them (docs/benchmarks.md).
        """
        paused = gc.isenabled()
        gc.disable()
        try:
            while True:
                read = self._step_retrying()
                if advance is not None and read:
                    advance(read)
                if read == 0:
                    return
        finally:
            if paused:
                gc.enable()

    def follow(
        self,
        stop: threading.Event,
        *,
        poll_seconds: float = 0.5,
        wake: threading.Event | None = None,
        status_seconds: float = 10.0,
    ) -> None:
        """Catch up, then keep projecting new events until ``stop`` is set."""
        next_status = time.monotonic()
        while not stop.is_set():
            read = self._step_retrying(stop)
            if time.monotonic() >= next_status:
                self.log_status()
                next_status = time.monotonic() + status_seconds
            if read == 0:
                if wake is not None:
                    wake.wait(poll_seconds)
                    wake.clear()
                else:
                    stop.wait(poll_seconds)
        self.commit()

    def _step_retrying(self, stop: threading.Event | None = None) -> int:
        """``step``, with faults of the database waited out (0 if ``stop`` is set
        meanwhile); a step that failed is tried again from the committed positions."""
        failed = False

        def step() -> int:
            nonlocal failed
            if failed:
                self.forget_uncommitted()
            failed = True
            read = self.step()
            failed = False
            return read

        try:
            return retry(
                step,
                is_fault=is_database_fault,
                cause="database",
                log=log,
                stop=stop,
                backoff=RETRY_BACKOFF,
            )
        except Stopped:
            return 0

    # Status ----------------------------------------------------------------------------

    def status(self) -> list[LaneStatus]:
        head = self.head()
        return [LaneStatus(lane.name, lane.committed or 0, head) for lane in self.lanes]

    def log_status(self) -> None:
        for lane in self.status():
            log.info(
                "projection_status",
                projection=lane.name,
                position=lane.position,
                head=lane.head,
                lag=lane.lag,
            )
