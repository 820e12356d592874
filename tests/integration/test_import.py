"""``import_lines`` on a real store: validating in a worker process changes nothing but
where the validation runs."""

from __future__ import annotations

import io
import json
from pathlib import Path

from lifecycle.domain.messages import MessageRules
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.importer import ImportReport, import_lines
from lifecycle.settings import Settings
from tests.builders import line, message


def feed() -> list[bytes]:
    """Valid lines of several customers with a duplicate, a blank line and rejects."""
    lines = [
        line(kind="purchase" if n % 3 else "inquiry", customer_id=f"c-{n % 4}", event_id=f"e-{n}")
        for n in range(40)
    ]
    lines[5] = b"{not json"
    lines[17] = json.dumps(message(kind="teleportation")).encode()
    lines[23] = b"   "
    lines[31] = lines[30]  # a second delivery
    return lines


def imported(
    lines: list[bytes], directory: Path, parse_in_worker: bool
) -> tuple[ImportReport, str, int]:
    settings = Settings(database_url=f"sqlite:///{directory / 'lifecycle.db'}")
    app = Components(settings).application()
    rejects = io.StringIO()
    try:
        report = import_lines(
            app,
            lines,
            rules=MessageRules(),
            batch_size=7,
            rejects=rejects,
            parse_in_worker=parse_in_worker,
        )
        head = app.recorder.max_notification_id() or 0
    finally:
        app.close()
    return report, rejects.getvalue(), head


def test_validating_in_a_worker_records_and_rejects_what_validating_inline_does(
    tmp_path: Path,
) -> None:
    (tmp_path / "inline").mkdir()
    (tmp_path / "worker").mkdir()
    lines = feed()

    inline = imported(lines, tmp_path / "inline", parse_in_worker=False)
    in_worker = imported(lines, tmp_path / "worker", parse_in_worker=True)

    report, rejects, head = in_worker
    assert (report.lines, report.recorded, report.duplicates, report.rejected) == (40, 36, 1, 2)
    assert [json.loads(r)["line"] for r in rejects.splitlines()] == [6, 18]
    assert head > 36
    assert in_worker == inline
