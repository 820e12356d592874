"""`lifecycle serve` and `lifecycle run` take touchpoints over HTTP: an upstream posts,
then reads its own write back through the position it was answered."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from consumers.broker import free_port, port_is_open
from tests.builders import message
from tests.e2e.read.test_read_cli import _start_serving
from tests.e2e.test_kafka_cli import start
from tests.kafka_support import wait_until

KEY = "upstream-publisher-key"


def _call(url: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _post_and_read_back(base: str) -> tuple[dict[str, Any], dict[str, Any]]:
    status, written = _call(f"{base}/v1/touchpoints", message("purchase", customer_id="c-http"))
    assert status == 200, written
    status, summary = _call(f"{base}/v1/customers/c-http?min_position={written['position']}")
    assert status == 200, summary
    return written, summary


def test_serve_records_a_post_and_answers_the_read_of_it(tmp_path: Path) -> None:
    server, base = _start_serving(
        f"sqlite:///{tmp_path / 'lifecycle.db'}",
        "--workers",
        "1",
        env={"LIFECYCLE_API_KEYS": f"{KEY}:publisher", "LIFECYCLE_API_WAIT_SECONDS": "10"},
    )
    try:
        written, summary = _post_and_read_back(base)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)

    assert written["results"][0]["status"] == "recorded"
    assert summary["relationship"]["purchases"] == 1


def test_run_records_a_post_beside_its_kafka_consumer(tmp_path: Path) -> None:
    broker_port, api_port = free_port(), free_port()
    engine = start(
        "run",
        env={
            "LIFECYCLE_KAFKA_BROKER_PORT": str(broker_port),
            "LIFECYCLE_DATABASE_URL": f"sqlite:///{tmp_path / 'lifecycle.db'}",
            "LIFECYCLE_API_PORT": str(api_port),
            "LIFECYCLE_API_KEYS": f"{KEY}:publisher",
            "LIFECYCLE_API_WAIT_SECONDS": "10",
        },
        log=tmp_path / "run.log",
    )
    try:
        wait_until(lambda: port_is_open(api_port), timeout=60, what="the API of lifecycle run")
        written, summary = _post_and_read_back(f"http://127.0.0.1:{api_port}")
    finally:
        engine.send_signal(signal.SIGTERM)

    assert engine.wait(30) == 0
    assert written["results"][0]["status"] == "recorded"
    assert summary["relationship"]["purchases"] == 1
