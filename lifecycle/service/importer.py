"""``lifecycle import``: JSON lines of Contract 1 into the store through the batch path.

Every line is accounted for: recorded, a duplicate of one recorded before, or rejected
into the rejects file with its line number, error code, reason and original text.
Importing the same file twice records nothing the second time.

The lines are read and recorded a batch at a time. Validating a line costs about a
sixth of recording it, so a large import validates in a worker process on another
core (``parse_in_worker``), a batch or two ahead of the batch being recorded; the
touchpoints, rejections and batches are the same either way.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from typing import IO

from lifecycle.domain.clock import utc_now
from lifecycle.domain.errors import RejectedTouchpoint
from lifecycle.domain.messages import MessageRules, parse_touchpoint
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.service.application import LifecycleApplication


@dataclass
class ImportReport:
    lines: int = 0
    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_by_code: Counter[str] = field(default_factory=Counter)
    stage_changes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "lines": self.lines,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rejected_by_code": dict(self.rejected_by_code),
            "stage_changes": dict(self.stage_changes),
        }


@dataclass
class _Parsed:
    """One batch of lines, validated."""

    touchpoints: list[Touchpoint]
    rejections: list[tuple[int, str, str, bytes]]
    """(line number, error code, reason, the line as it arrived)"""
    lines: int
    size: int
    """Bytes of the lines."""


AHEAD = 2
"""Batches the worker validates ahead of the one being recorded."""
WORKER_PAYS_FROM_BYTES = 8 * 1024 * 1024
"""Below this, starting the worker (a second interpreter, half a second) costs more
than it saves (some 14 µs a line of about 200 bytes)."""


def import_lines(
    app: LifecycleApplication,
    lines: Iterable[bytes],
    *,
    rules: MessageRules,
    batch_size: int,
    rejects: IO[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = utc_now,
    parse_in_worker: bool = False,
) -> ImportReport:
    """Validate and record JSON lines, ``batch_size`` lines a transaction; ``on_progress``
    gets the bytes consumed."""
    report = ImportReport()
    chunks = _chunks(lines, batch_size)
    parsed = (
        _parsed_in_worker(chunks, rules, clock)
        if parse_in_worker
        else (_parse(chunk, first, clock(), rules) for first, chunk in chunks)
    )
    for batch in parsed:
        report.lines += batch.lines
        for number, code, reason, line in batch.rejections:
            report.rejected += 1
            report.rejected_by_code[code] += 1
            if rejects is not None:
                rejects.write(_reject_line(number, code, reason, line) + "\n")
        if batch.touchpoints:
            _record(app, batch.touchpoints, report)
        if on_progress is not None:
            on_progress(batch.size)
    return report


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the first line, up to ``size`` lines)"""
    chunk: list[bytes] = []
    first = 1
    for raw in lines:
        chunk.append(raw)
        if len(chunk) >= size:
            yield first, chunk
            first += len(chunk)
            chunk = []
    if chunk:
        yield first, chunk


def _parse(chunk: list[bytes], first: int, now: datetime, rules: MessageRules) -> _Parsed:
    parsed = _Parsed([], [], len(chunk), sum(len(raw) for raw in chunk))
    for number, raw in enumerate(chunk, start=first):
        line = raw.strip()
        if not line:
            continue
        try:
            parsed.touchpoints.append(parse_touchpoint(line, now, rules))
        except RejectedTouchpoint as rejection:
            parsed.rejections.append((number, rejection.code, rejection.reason, line))
    return parsed


def _parsed_in_worker(
    chunks: Iterator[tuple[int, list[bytes]]],
    rules: MessageRules,
    clock: Callable[[], datetime],
) -> Iterator[_Parsed]:
    """The chunks validated by a worker process, in order, ``AHEAD`` of the caller."""
    # Spawned, not forked: the recording process may hold threads (a connection pool).
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as worker:
        pending: deque[Future[_Parsed]] = deque()
        for first, chunk in chunks:
            pending.append(worker.submit(_parse, chunk, first, clock(), rules))
            if len(pending) > AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _record(app: LifecycleApplication, batch: list[Touchpoint], report: ImportReport) -> None:
    outcome = app.record_batch(batch)
    report.recorded += outcome.recorded
    report.duplicates += outcome.duplicates
    report.stage_changes.update(outcome.stage_changes)


def _reject_line(number: int, code: str, reason: str, line: bytes) -> str:
    return json.dumps(
        {
            "line": number,
            "error_code": code,
            "reason": reason,
            "original": line.decode("utf-8", errors="replace"),
        },
        ensure_ascii=False,
    )
