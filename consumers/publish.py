"""Publishing Contract 1 touchpoints to ``crm.touchpoints``: backfills, tests, the demo.

Each line is validated as the consumer would validate it; a valid line is sent as it
came (its original bytes), keyed by its ``customer_id``, so every touchpoint of a
customer lands on one partition, in order. Invalid lines are reported and not sent.
``publish_lines`` returns once the broker has acknowledged every message sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kafka import KafkaProducer

from lifecycle.domain.clock import utc_now
from lifecycle.domain.errors import RejectedTouchpoint
from lifecycle.domain.messages import MessageRules, parse_touchpoint

ACK_TIMEOUT_SECONDS = 60.0


@dataclass
class PublishReport:
    lines: int = 0
    sent: int = 0
    invalid: int = 0
    invalid_by_code: Counter[str] = field(default_factory=Counter)
    next_offsets: dict[int, int] = field(default_factory=dict)
    """Per partition, the offset after the last message sent (what a consumer must reach)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "sent": self.sent,
            "invalid": self.invalid,
            "invalid_by_code": dict(self.invalid_by_code),
        }


class PublishFailed(Exception):
    """The broker did not acknowledge every message."""


def publish_lines(
    producer: KafkaProducer,
    topic: str,
    lines: Iterable[bytes],
    *,
    rules: MessageRules,
    on_invalid: Callable[[int, RejectedTouchpoint, bytes], None] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> PublishReport:
    """Validate and send JSON lines; ``on_invalid(line_number, rejection, line)``."""
    report = PublishReport()
    now = clock()
    futures: list[Any] = []
    for number, raw in enumerate(lines, start=1):
        report.lines += 1
        line = raw.strip()
        if not line:
            continue
        try:
            touchpoint = parse_touchpoint(line, now, rules)
        except RejectedTouchpoint as rejection:
            report.invalid += 1
            report.invalid_by_code[rejection.code] += 1
            if on_invalid is not None:
                on_invalid(number, rejection, line)
            continue
        futures.append(producer.send(topic, key=touchpoint.customer_id.encode(), value=line))
    _await(producer, futures, report)
    return report


def publish_raw(
    producer: KafkaProducer, topic: str, messages: Iterable[tuple[bytes | None, bytes]]
) -> PublishReport:
    """Send (key, value) pairs as they are, valid or not (the demo's broken messages)."""
    report = PublishReport()
    futures = [producer.send(topic, key=key, value=value) for key, value in messages]
    report.lines = len(futures)
    _await(producer, futures, report)
    return report


def _await(producer: KafkaProducer, futures: list[Any], report: PublishReport) -> None:
    producer.flush(timeout=ACK_TIMEOUT_SECONDS)
    failures: list[BaseException] = []
    for future in futures:
        try:
            metadata = future.get(timeout=ACK_TIMEOUT_SECONDS)
        except Exception as error:
            failures.append(error)
            continue
        report.sent += 1
        offsets = report.next_offsets
        offsets[metadata.partition] = max(offsets.get(metadata.partition, 0), metadata.offset + 1)
    if failures:
        raise PublishFailed(
            f"{len(failures)} of {len(futures)} messages were not acknowledged: {failures[0]}"
        )
