"""``lifecycle import``: JSON lines of Contract 1 into the store through the batch path.

Every line is accounted for: recorded, a duplicate of one recorded before, or rejected
into the rejects file with its line number, error code, reason and original text.
Importing the same file twice records nothing the second time.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from lifecycle.domain.errors import RejectedTouchpoint
from lifecycle.domain.messages import MessageRules, parse_touchpoint, utc_now
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


def import_lines(
    app: LifecycleApplication,
    lines: Iterable[bytes],
    *,
    rules: MessageRules,
    batch_size: int,
    rejects: IO[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> ImportReport:
    """Validate and record JSON lines; ``on_progress`` gets the bytes consumed."""
    report = ImportReport()
    batch: list[Touchpoint] = []
    now = clock()
    for number, raw in enumerate(lines, start=1):
        report.lines += 1
        if on_progress is not None:
            on_progress(len(raw))
        line = raw.strip()
        if not line:
            continue
        try:
            batch.append(parse_touchpoint(line, now, rules))
        except RejectedTouchpoint as rejection:
            report.rejected += 1
            report.rejected_by_code[rejection.code] += 1
            if rejects is not None:
                rejects.write(_reject_line(number, rejection, line) + "\n")
        if len(batch) >= batch_size:
            _record(app, batch, report)
            batch = []
            now = clock()
    if batch:
        _record(app, batch, report)
    return report


def _record(app: LifecycleApplication, batch: list[Touchpoint], report: ImportReport) -> None:
    outcome = app.record_batch(batch)
    report.recorded += outcome.recorded
    report.duplicates += outcome.duplicates
    report.stage_changes.update(outcome.stage_changes)


def _reject_line(number: int, rejection: RejectedTouchpoint, line: bytes) -> str:
    return json.dumps(
        {
            "line": number,
            "error_code": rejection.code,
            "reason": rejection.reason,
            "original": line.decode("utf-8", errors="replace"),
        },
        ensure_ascii=False,
    )
