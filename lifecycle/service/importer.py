"""``lifecycle import``: JSON lines of Contract 1 into the store through the batch path.

Every line is accounted for: recorded, a duplicate of one recorded before, or rejected
into the rejects file with its line number, error code, reason and original text.
Importing the same file twice records nothing the second time.

The lines are read and recorded a batch at a time. Recording is CPU-bound Python (the
aggregate, its rules, the hash chain), so a large file is imported by several processes
(``import_file``), one per core by default: each reads the whole file and records the
lines of its shard of the customers (by ``customer_id``), so no two write one
relationship and each customer's touchpoints keep their order. A line whose customer
cannot be read is shard 0's, which rejects it. The rejections are merged back into line
order. A stream that cannot be read twice (standard input) is imported by one process,
which validates in a worker process on another core (``parse_in_worker``), a batch or
two ahead of the batch being recorded: validating a line costs about a sixth of
recording it. The touchpoints, rejections and counts are the same every way.
"""

from __future__ import annotations

import heapq
import json
import tempfile
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import IO

import orjson

from lifecycle.domain.clock import utc_now
from lifecycle.domain.errors import RejectedTouchpoint
from lifecycle.domain.messages import MessageRules, parse_touchpoint
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.service.application import LifecycleApplication
from lifecycle.service.processes import ShardFailed, run_in_processes


@dataclass
class ImportReport:
    lines: int = 0
    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_by_code: Counter[str] = field(default_factory=Counter)
    stage_changes: Counter[str] = field(default_factory=Counter)

    def add(self, other: ImportReport) -> None:
        self.lines += other.lines
        self.recorded += other.recorded
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.rejected_by_code.update(other.rejected_by_code)
        self.stage_changes.update(other.stage_changes)

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
class _Chunk:
    """One batch of lines, as read."""

    lines: list[tuple[int, bytes]]
    """(line number, the line)"""
    read: int
    """Lines read of the shard, blank ones included."""
    size: int
    """Bytes read to make it, other shards' lines included."""


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
    return _import_chunks(
        app,
        _chunks(lines, batch_size),
        rules=rules,
        rejects=rejects,
        on_progress=on_progress,
        clock=clock,
        parse_in_worker=parse_in_worker,
    )


class ImportStopped(ShardFailed):
    """A shard of an import shared between processes failed: what the shards recorded
    stays, and importing the file again records the rest (imports are idempotent)."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"import stopped, {reason}; what was recorded stays, and importing the file "
            "again records the rest"
        )


def import_file(
    app: LifecycleApplication,
    path: Path,
    open_application: Callable[[], LifecycleApplication],
    *,
    processes: int,
    rules: MessageRules,
    batch_size: int,
    rejects: IO[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> ImportReport:
    """``import_lines`` of a file, shared between ``processes`` processes by shards of the
    customers: this one with ``app``, each other with an application of its own from
    ``open_application`` (which must pickle: it runs in the spawned process, and
    configures its logging); ``on_progress`` gets the bytes every shard has got
    through."""
    with tempfile.TemporaryDirectory(prefix="lifecycle-import-") as directory:
        parts = Path(directory)
        reports = run_in_processes(
            processes,
            partial(_import_shard, path, rules, batch_size, parts, clock, app),
            partial(
                _import_shard_in_worker, path, rules, batch_size, parts, clock, open_application
            ),
            on_progress,
            failed=ImportStopped,
        )
        if rejects is not None:
            _merge_rejections([parts / f"{index}.jsonl" for index in range(processes)], rejects)
    report = ImportReport()
    for shard_report in reports:
        report.add(shard_report)
    return report


def _import_shard(
    path: Path,
    rules: MessageRules,
    batch_size: int,
    parts: Path,
    clock: Callable[[], datetime],
    app: LifecycleApplication,
    index: int,
    count: int,
    advance: Callable[[int], None],
) -> ImportReport:
    """The lines of shard ``index`` of ``count``, its rejections into a file in ``parts``."""
    with (
        open(path, "rb") as source,
        (parts / f"{index}.jsonl").open("w", encoding="utf-8") as rejects,
    ):
        return _import_chunks(
            app,
            _chunks(source, batch_size, shard=(index, count)),
            rules=rules,
            rejects=rejects,
            on_progress=advance,
            clock=clock,
        )


def _import_shard_in_worker(
    path: Path,
    rules: MessageRules,
    batch_size: int,
    parts: Path,
    clock: Callable[[], datetime],
    open_application: Callable[[], LifecycleApplication],
    index: int,
    count: int,
    advance: Callable[[int], None],
) -> ImportReport:
    with closing(open_application()) as app:
        app.follow_policy()
        return _import_shard(path, rules, batch_size, parts, clock, app, index, count, advance)


def _import_chunks(
    app: LifecycleApplication,
    chunks: Iterator[_Chunk],
    *,
    rules: MessageRules,
    rejects: IO[str] | None,
    on_progress: Callable[[int], None] | None,
    clock: Callable[[], datetime],
    parse_in_worker: bool = False,
) -> ImportReport:
    report = ImportReport()
    parsed = (
        _parsed_in_worker(chunks, rules, clock)
        if parse_in_worker
        else (_parse(chunk, clock(), rules) for chunk in chunks)
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


def _chunks(lines: Iterable[bytes], size: int, shard: tuple[int, int] = (0, 1)) -> Iterator[_Chunk]:
    """Up to ``size`` numbered lines at a time, of ``shard`` (index, count) only."""
    index, count = shard
    chunk = _Chunk([], 0, 0)
    for number, raw in enumerate(lines, start=1):
        chunk.size += len(raw)
        if count == 1 or _shard_of(raw, count) == index:
            chunk.read += 1
            chunk.lines.append((number, raw))
            if len(chunk.lines) >= size:
                yield chunk
                chunk = _Chunk([], 0, 0)
    if chunk.size:
        yield chunk


def _shard_of(raw: bytes, count: int) -> int:
    """Which shard a line's customer is in; 0 for a line whose customer cannot be read
    (blank, not JSON, no customer_id): shard 0 rejects it as any import would."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 0
    customer = message.get("customer_id") if type(message) is dict else None
    if type(customer) is not str:
        return 0
    return zlib.crc32(customer.encode()) % count


def _parse(chunk: _Chunk, now: datetime, rules: MessageRules) -> _Parsed:
    parsed = _Parsed([], [], chunk.read, chunk.size)
    for number, raw in chunk.lines:
        line = raw.strip()
        if not line:
            continue
        try:
            parsed.touchpoints.append(parse_touchpoint(line, now, rules))
        except RejectedTouchpoint as rejection:
            parsed.rejections.append((number, rejection.code, rejection.reason, line))
    return parsed


def _parsed_in_worker(
    chunks: Iterator[_Chunk],
    rules: MessageRules,
    clock: Callable[[], datetime],
) -> Iterator[_Parsed]:
    """The chunks validated by a worker process, in order, ``AHEAD`` of the caller."""
    # Spawned, not forked: the recording process may hold threads (a connection pool).
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as worker:
        pending: deque[Future[_Parsed]] = deque()
        for chunk in chunks:
            pending.append(worker.submit(_parse, chunk, clock(), rules))
            if len(pending) > AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _merge_rejections(parts: list[Path], rejects: IO[str]) -> None:
    """The shards' rejections, each in line order, merged into line order."""
    with ExitStack() as stack:
        files = [stack.enter_context(part.open(encoding="utf-8")) for part in parts]
        for line in heapq.merge(*files, key=lambda text: json.loads(text)["line"]):
            rejects.write(line)


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
