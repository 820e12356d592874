"""The read side's commands as an operator runs them: project, replay, serve."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.names import READ_MODEL_NAMES
from projections.rebuild import rebuild
from tests.conftest import run_cli
from tests.integration.projections.conftest import read_model_dumps


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated population recorded once, copied by each test that changes it."""
    directory = tmp_path_factory.mktemp("population")
    lines = directory / "population.jsonl"
    assert run_cli("simulate", "--customers", "600", "--out", str(lines)).returncode == 0
    url = f"sqlite:///{directory / 'lifecycle.db'}"
    assert run_cli("import", str(lines), "--database-url", url).returncode == 0
    return directory / "lifecycle.db"


@pytest.fixture
def store(population: Path, tmp_path: Path) -> str:
    copy = tmp_path / "lifecycle.db"
    copy.write_bytes(population.read_bytes())
    return f"sqlite:///{copy}"


def _position(database: Path) -> int:
    """The summary's committed position, read as any other reader would."""
    if not database.exists():
        return 0
    with sqlite3.connect(database, timeout=30) as connection:
        try:
            row = connection.execute(
                "SELECT notification_id FROM tracking WHERE application_name = 'Lifecycle'"
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
    return row[0] if row else 0


def test_project_once_catches_up_and_reports_positions_and_lag(store: str) -> None:
    done = run_cli("project", "--once", "--database-url", store)

    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in lines] == list(READ_MODEL_NAMES)
    assert all(line.split()[-1] == "0" for line in lines)  # lag


def test_an_unknown_projection_is_a_usage_error(store: str) -> None:
    done = run_cli("project", "--once", "--projection", "nope", "--database-url", store)

    assert done.returncode == 2
    assert "unknown projection 'nope'" in done.stderr


def test_a_projection_killed_mid_batch_resumes_without_counting_twice(store: str) -> None:
    summary_file = Path(store.removeprefix("sqlite:///")).with_name("lifecycle.summary.db")
    env = {**os.environ, "LIFECYCLE_LOG_FORMAT": "json", "LIFECYCLE_PROJECTION_PAGE_SIZE": "25"}
    command = [
        sys.executable,
        "-m",
        "lifecycle",
        "project",
        "--batch-size",
        "25",
        "--database-url",
        store,
    ]
    killed_at = []
    for _ in range(2):
        before = _position(summary_file)
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while _position(summary_file) <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at.append(_position(summary_file))
    finished = run_cli("project", "--once", "--database-url", store)

    settings = Settings(database_url=store)
    app: LifecycleApplication = Components(settings).application()
    head = app.recorder.max_notification_id()
    app.close()
    projected = read_model_dumps(settings)
    rebuild(Components(settings))
    assert finished.returncode == 0, finished.stderr
    assert 0 < killed_at[0] < killed_at[1] < head
    assert read_model_dumps(settings) == projected


def test_replay_rebuilds_and_says_how_fast(store: str) -> None:
    run_cli("project", "--once", "--database-url", store)

    done = run_cli("replay", "--projection", "funnel", "--database-url", store)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("rebuilt funnel from ")
    assert "events/s" in done.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_with_one_worker_answers_over_http_while_projecting(store: str) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "LIFECYCLE_LOG_FORMAT": "json",
        "LIFECYCLE_API_KEYS": "k1:reader",
        # Ready only once caught up: the funnel read next must count everyone.
        "LIFECYCLE_API_READY_MAX_LAG": "0",
    }
    command = ["serve", "--workers", "1", "--port", str(port), "--database-url", store]
    server = subprocess.Popen(
        [sys.executable, "-m", "lifecycle", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        ready = 0
        while time.monotonic() < deadline and ready != 200:
            try:
                ready = urllib.request.urlopen(f"{base}/readyz", timeout=2).status
            except OSError:
                time.sleep(0.2)
        request = urllib.request.Request(
            f"{base}/v1/funnel", headers={"Authorization": "Bearer k1"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            funnel = response.read()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)

    assert ready == 200
    assert b'"relationships":600' in funnel


def _start_serving(store: str, *args: str, env: dict[str, str] | None = None) -> Any:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lifecycle",
            "serve",
            "--port",
            str(port),
            "--database-url",
            store,
            *args,
        ],
        env={
            **os.environ,
            "LIFECYCLE_LOG_FORMAT": "json",
            "LIFECYCLE_API_KEYS": "k1:admin",
            # Ready (what this waits for) only once every read model has caught up.
            "LIFECYCLE_API_READY_MAX_LAG": "0",
            **(env or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{base}/readyz", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.2)
    return server, base


def _get(url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": "Bearer k1"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _spawned(pid: int) -> list[int]:
    """The processes ``pid`` started with multiprocessing's spawn (workers, runners)."""
    return [
        child
        for child in _children(pid)
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def test_serve_with_two_workers_answers_while_projecting_in_a_process_of_its_own(
    store: str,
) -> None:
    server, base = _start_serving(store, "--workers", "2")
    try:
        spawned = _spawned(server.pid)
        answers = [_get(f"{base}/v1/funnel") for _ in range(20)]
        slashed = _get(f"{base}/v1/customers/{urllib.parse.quote('a/b', safe='')}")
    finally:
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=60)

    assert len(spawned) == 3  # two workers and the projection process
    assert {status for status, _ in answers} == {200}
    assert all(b'"relationships":600' in body for _, body in answers)
    assert slashed == (
        404,
        b'{"error":"not_found","message":"no relationship for customer \'a/b\'"}',
    )
    assert exit_code == 0


def test_metrics_of_several_workers_add_up_every_process(store: str, tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    server, base = _start_serving(
        store, "--workers", "2", env={"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    )
    try:
        for _ in range(30):
            _get(f"{base}/v1/funnel")
        scrapes = [_get(f"{base}/metrics")[1].decode() for _ in range(6)]
        spawned = _spawned(server.pid)
        writers = {int(path.stem.rsplit("_", 1)[-1]) for path in shared.glob("*.db")}
    finally:
        server.send_signal(signal.SIGINT)
        exit_code = server.wait(timeout=60)

    funnel_requests = (
        'lifecycle_api_request_seconds_count{method="GET",route="/v1/funnel",status="200"} 30.0'
    )
    assert all(funnel_requests in scrape for scrape in scrapes)
    assert all(_samples(scrape, "lifecycle_event_log_head") == 1 for scrape in scrapes)
    assert len(spawned) == 3
    assert set(spawned) <= writers  # each worker and the projection process wrote
    assert exit_code == 0


def _samples(scrape: str, name: str) -> int:
    """How many series of ``name`` a scrape holds (one: the processes' values merged)."""
    return sum(1 for line in scrape.splitlines() if line.split("{")[0].split(" ")[0] == name)
