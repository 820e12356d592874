"""``lifecycle policy diff``: what a candidate policy would change, found by replaying
the log in memory under the adopted policy and under the candidate
(``lifecycle.domain.whatif``); nothing is written anywhere.

It reads the log as a rebuild does (``projections.rebuild.run_in_shards``): the
customers are shared between this process and spawned workers, each part reads the log
up to the head as it was when the diff began, decodes only its own customers'
touchpoints and manual stage changes, and replays them; the parts' comparisons are
added up. The policies travel to the workers as their TOML text.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Notification

from lifecycle.domain.policy import MANUAL, PolicyText
from lifecycle.domain.whatif import StageChanged, StageComparison, TouchpointRecorded, WhatIf
from lifecycle.persistence.recorders import BulkSQLiteProcessRecorder
from lifecycle.persistence.topics import stored_topics
from lifecycle.service.application import LifecycleApplication
from projections.rebuild import run_in_shards, shards_for
from projections.shards import Shard, shard_of
from projections.wiring import Wiring

TOPICS = (*stored_topics(TouchpointRecorded), *stored_topics(StageChanged))
STAGE_CHANGED_TOPICS = frozenset(stored_topics(StageChanged))
_MANUAL_RULE = f'"rule":"{MANUAL}"'.encode()


@dataclass(frozen=True)
class PolicyDiff:
    """What ``diff_policies`` found, and what it read to find it."""

    comparison: StageComparison
    events: int
    """The position of the log replayed up to: the events it holds."""
    seconds: float
    parts: int

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def diff_policies(
    wiring: Wiring,
    adopted: PolicyText,
    candidate: PolicyText,
    *,
    inactive_at: datetime | None,
    advance: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> PolicyDiff:
    """Replay every relationship under ``adopted`` and ``candidate`` and compare where
    they end (inactivity judged at ``inactive_at``; None: not at all). ``workers``:
    processes to share the customers between (default as for a rebuild)."""
    application = wiring.log_reader()
    try:
        head = application.recorder.max_notification_id() or 0
        parts = workers or shards_for(wiring, head)
        started = time.perf_counter()
        job = functools.partial(_replay_part, adopted.text, candidate.text, inactive_at)
        outcomes = run_in_shards(wiring, job, parts, head, advance, application)
        seconds = time.perf_counter() - started
    finally:
        application.close()
    comparison = StageComparison()
    for outcome in outcomes:
        comparison.add(outcome)
    comparison.differing.sort()
    return PolicyDiff(comparison, head, seconds, parts)


def _replay_part(
    adopted: str,
    candidate: str,
    inactive_at: datetime | None,
    wiring: Wiring,
    shard: Shard,
    head: int,
    advance: Callable[[int], None] | None,
    application: LifecycleApplication,
) -> StageComparison:
    """One part's customers, replayed under both policies (a ``PartJob``)."""
    what_if = WhatIf(
        PolicyText.parse(adopted, "the adopted policy").policy,
        PolicyText.parse(candidate, "the candidate policy").policy,
    )
    index, count = shard.index, shard.count
    recorder = application.recorder
    selected_in_sql = isinstance(recorder, BulkSQLiteProcessRecorder) and (
        shard.hex_digits is not None
    )
    passes_over_others = count > 1 and not selected_in_sql
    to_domain_event: Callable[[Any], Any] = application.mapper.to_domain_event
    page_size = wiring.settings.projection_page_size
    start = 0
    while start < head:
        notifications: Sequence[Notification]
        if selected_in_sql:
            assert isinstance(recorder, BulkSQLiteProcessRecorder)
            notifications = recorder.select_notifications(
                start + 1, page_size, stop=head, topics=TOPICS, shard_digits=shard.hex_digits
            )
        else:
            notifications = recorder.select_notifications(
                start + 1, page_size, stop=head, topics=TOPICS
            )
        for notification in notifications:
            if passes_over_others and shard_of(notification.originator_id, count) != index:
                continue
            # Stage changes the engine decided are not inputs of a replay: only a
            # person's are decoded (compact JSON spells the rule so, and no other field
            # of the event can hold those bytes unescaped).
            if notification.topic in STAGE_CHANGED_TOPICS and _MANUAL_RULE not in (
                notification.state
            ):
                continue
            what_if.fold(to_domain_event(notification))
        end = notifications[-1].id if len(notifications) == page_size else head
        if advance is not None:
            advance(end - start)
        start = end
    return what_if.compare(inactive_at)
