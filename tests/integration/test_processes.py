"""A job shared between processes by shards (``lifecycle.service.processes``), with real
spawned processes: outcomes, progress, and what happens when a shard or the process
that started the job dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lifecycle.service.processes import ShardFailed, run_in_processes


def report_steps(index: int, count: int, advance: Callable[[int], None]) -> tuple[int, int, int]:
    for _ in range(3):
        advance(10 * (index + 1))
    return index, count, os.getpid()


def fail_in_worker(index: int, count: int, advance: Callable[[int], None]) -> None:
    if index == 1:
        raise RuntimeError("the database went away")
    time.sleep(0.5)


def die_in_worker(index: int, count: int, advance: Callable[[int], None]) -> None:
    if index == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)


def report_until_stopped(index: int, count: int, advance: Callable[[int], None]) -> None:
    while True:
        advance(1)
        time.sleep(0.05)


def write_pid_and_report(index: int, count: int, advance: Callable[[int], None]) -> None:
    """Writes its pid where the test's script says, then reports until stopped."""
    Path(os.environ["SHARD_PID_FILE"]).write_text(str(os.getpid()))
    report_until_stopped(index, count, advance)


def test_every_shard_runs_once_in_a_process_of_its_own_and_outcomes_come_in_shard_order() -> None:
    outcomes = run_in_processes(3, report_steps, report_steps)

    assert [(index, count) for index, count, _ in outcomes] == [(0, 3), (1, 3), (2, 3)]
    assert outcomes[0][2] == os.getpid()
    assert len({pid for _, _, pid in outcomes}) == 3


def test_progress_is_how_far_every_shard_has_got() -> None:
    told: list[int] = []

    run_in_processes(3, report_steps, report_steps, told.append)

    # Shard 0 reports 10 at a time, the others more: the least is shard 0's 30.
    assert sum(told) == 30


def test_a_shard_that_raises_fails_the_job_naming_the_shard_and_the_reason() -> None:
    with pytest.raises(ShardFailed, match="shard 1 failed: RuntimeError: the database went away"):
        run_in_processes(2, fail_in_worker, fail_in_worker)


def test_a_shard_killed_from_outside_fails_the_job_with_its_exit_code() -> None:
    with pytest.raises(ShardFailed, match="shard 1 failed: its worker exited with code -9"):
        run_in_processes(2, die_in_worker, die_in_worker)


def test_a_worker_stops_when_the_process_that_started_the_job_is_killed(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "shard.pid"
    script = (
        "from tests.integration.test_processes import report_until_stopped, write_pid_and_report\n"
        "from lifecycle.service.processes import run_in_processes\n"
        "run_in_processes(2, report_until_stopped, write_pid_and_report)\n"
    )
    starter = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, "SHARD_PID_FILE": str(pid_file)}
    )
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.05)
        worker = int(pid_file.read_text())
    finally:
        starter.kill()
        starter.wait()

    deadline = time.monotonic() + 10
    while _alive(worker):
        assert time.monotonic() < deadline, "the worker outlived the killed starter"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running: a zombie (exited, not yet reaped) is not."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
