"""``lifecycle import`` of a large file, shared between processes, killed with SIGKILL in
the middle (the command, or one of its processes): run again, it records every
touchpoint exactly once, and the store's hash chains verify."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from lifecycle.service.importer import WORKER_PAYS_FROM_BYTES
from tests.builders import line
from tests.conftest import run_cli

CUSTOMERS = 2_000


def large_file(path: Path) -> int:
    """Enough touchpoints for the import to share the file between processes; how many."""
    note = "n" * 400  # bigger lines: fewer of them reach the size that shares the file
    lines: list[bytes] = []
    size = 0
    while size < WORKER_PAYS_FROM_BYTES * 1.1:
        number = len(lines)
        lines.append(
            line(
                kind="inquiry",
                customer_id=f"cust-{number % CUSTOMERS}",
                event_id=f"e-{number}",
                attributes={"note": note},
            )
        )
        size += len(lines[-1]) + 1
    path.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


def recorded_touchpoints(database: Path) -> list[tuple[str, str]]:
    """(relationship, event id) of every touchpoint in the store's de-duplication record."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return list(connection.execute("SELECT * FROM recorded_touchpoints"))


class Importing:
    """`lifecycle import --processes 2` of a large file, a quarter of the way through."""

    def __init__(self, directory: Path) -> None:
        self.source = directory / "touchpoints.jsonl"
        self.lines = large_file(self.source)
        self.database = directory / "lifecycle.db"
        self.env = {**os.environ, "LIFECYCLE_DATABASE_URL": f"sqlite:///{self.database}"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lifecycle", "import", str(self.source), "--processes", "2"],
            env={**self.env, "LIFECYCLE_LOG_FORMAT": "json"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while len(_recorded(self.database)) < self.lines // 4:
            assert self.process.poll() is None, "the import ended before it was killed"
            assert time.monotonic() < deadline, "the import made no progress"
            time.sleep(0.1)

    def again(self) -> subprocess.CompletedProcess[str]:
        return run_cli("import", str(self.source), "--processes", "2", "--json", env=self.env)


def test_an_import_killed_in_the_middle_and_run_again_records_each_touchpoint_once(
    tmp_path: Path,
) -> None:
    importing = Importing(tmp_path)
    lines, database = importing.lines, importing.database
    importing.process.send_signal(signal.SIGKILL)
    importing.process.communicate()
    _wait_for_the_workers_to_stop(database)
    killed_at = len(_recorded(database))
    assert killed_at < lines

    again = importing.again()

    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["recorded"], report["duplicates"], report["rejected"]) == (
        lines - killed_at,
        killed_at,
        0,
    )
    recorded = _recorded(database)
    assert len(recorded) == len(set(recorded)) == lines
    verify = run_cli("audit", "verify", env=importing.env)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_shard_killed_in_the_middle_stops_the_import_with_one_line_and_a_rerun_completes_it(
    tmp_path: Path,
) -> None:
    importing = Importing(tmp_path)
    (shard,) = _spawned(importing.process.pid)
    os.kill(shard, signal.SIGKILL)
    _, errors = importing.process.communicate(timeout=120)

    assert importing.process.returncode == 1
    assert errors.strip().splitlines()[-1] == (
        "lifecycle: import stopped, shard 1 failed: its worker exited with code -9; what was "
        "recorded stays, and importing the file again records the rest"
    )
    again = importing.again()
    assert again.returncode == 0, again.stderr
    recorded = _recorded(importing.database)
    assert len(recorded) == len(set(recorded)) == importing.lines


def _spawned(pid: int) -> list[int]:
    """The processes ``pid`` started with multiprocessing's spawn (not its resource
    tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def _recorded(database: Path) -> list[tuple[str, str]]:
    try:
        return recorded_touchpoints(database)
    except sqlite3.OperationalError:
        return []  # not created yet


def _wait_for_the_workers_to_stop(database: Path) -> None:
    """The spawned shard stops at its next report once its starter is gone: wait until
    nothing more is written."""
    count, still_since = -1, time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() - still_since < 2:
        assert time.monotonic() < deadline, "the import's workers went on writing"
        now = len(_recorded(database))
        if now != count:
            count, still_since = now, time.monotonic()
        time.sleep(0.2)
