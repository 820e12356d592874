"""``import_lines`` and ``import_file`` on a real store: validating in a worker process,
or sharing a file between processes by customer, changes nothing but where the work
runs."""

from __future__ import annotations

import functools
import io
import json
from collections import defaultdict
from pathlib import Path

from eventsourcing.utils import get_topic

from lifecycle.domain.messages import MessageRules
from lifecycle.domain.relationship import Relationship
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.service.importer import ImportReport, import_file, import_lines
from lifecycle.settings import Settings
from tests.builders import line, message


def feed() -> list[bytes]:
    """Valid lines of several customers with a duplicate, a blank line and rejects."""
    lines = [
        line(kind="purchase" if n % 3 else "inquiry", customer_id=f"c-{n % 8}", event_id=f"e-{n}")
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


def open_application(settings: Settings) -> LifecycleApplication:
    return Components(settings).application()


def imported_in_shards(
    lines: list[bytes], directory: Path, processes: int
) -> tuple[ImportReport, str, dict[str, list[tuple[str, str | None]]]]:
    """The report, the rejects and, per customer, each event's (type, touchpoint id)."""
    source = directory / "touchpoints.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    settings = Settings(database_url=f"sqlite:///{directory / 'lifecycle.db'}")
    app = Components(settings).application()
    rejects = io.StringIO()
    try:
        app.follow_policy()
        report = import_file(
            app,
            source,
            functools.partial(open_application, settings),
            processes=processes,
            rules=MessageRules(),
            batch_size=7,
            rejects=rejects,
        )
        return report, rejects.getvalue(), events_by_customer(app)
    finally:
        app.close()


def events_by_customer(app: LifecycleApplication) -> dict[str, list[tuple[str, str | None]]]:
    relationships = get_topic(Relationship)
    events: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for notification in app.recorder.select_notifications(start=1, limit=10_000):
        if not notification.topic.startswith(relationships):
            continue
        event = app.mapper.to_domain_event(notification)
        events[str(event.customer_id)].append(  # type: ignore[attr-defined]
            (type(event).__name__, getattr(event, "event_id", None))
        )
    return dict(events)


def test_sharing_a_file_between_processes_records_and_rejects_what_one_process_does(
    tmp_path: Path,
) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    lines = feed()  # c-0 to c-3 are one shard of two, c-4 to c-7 the other

    one = imported_in_shards(lines, tmp_path / "one", processes=1)
    two = imported_in_shards(lines, tmp_path / "two", processes=2)

    report, rejects, events = two
    assert (report.lines, report.recorded, report.duplicates, report.rejected) == (40, 36, 1, 2)
    assert [json.loads(r)["line"] for r in rejects.splitlines()] == [6, 18]
    assert sorted(events) == [f"c-{n}" for n in range(8)]
    assert two == one


def test_a_file_imported_again_in_shards_records_nothing(tmp_path: Path) -> None:
    lines = feed()
    imported_in_shards(lines, tmp_path, processes=2)

    again, _, _ = imported_in_shards(lines, tmp_path, processes=2)

    assert (again.recorded, again.duplicates, again.rejected) == (0, 37, 2)
