"""HTTP ingestion benchmark (issue 13): touchpoints/s through `POST /v1/touchpoints` in
batches, beside `lifecycle import`'s rate on the same data in the same run (target: at
least 70 % of it); then single-message requests at a fixed rate, open loop, with their
latency percentiles (target: 200/s with p99 under 50 ms). SQLite.

    .venv/bin/python -m bench.http_ingest [--touchpoints 100000] [--customers 10000]
        [--batch 500] [--rate 200] [--seconds 20]

The baseline is what `lifecycle import` does, timed in this process without its start-up
(the importer's batch path, batches of LIFECYCLE_IMPORT_BATCH_SIZE): the comparison is
then the harder one for HTTP. `lifecycle serve --no-project --workers 1` runs as a
subprocess on a fresh store; batches are sent one after another on one keep-alive
connection, as JSON lines (`application/x-ndjson`) and as JSON arrays; one worker,
because the store takes one writer at a time and two workers would only meet each
other's version conflicts. Latency counts from each request's scheduled time (no
coordinated omission).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.api import _free_port, _quantile, _server_cpu_seconds
from bench.workload import write_workload

KEY = "bench-publisher"


class _Connection:
    """A minimal HTTP/1.1 keep-alive client: cheap beside the server it loads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        self.writer.write(
            (
                f"POST /v1/touchpoints HTTP/1.1\r\nHost: bench\r\n"
                f"Authorization: Bearer {KEY}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)


class _Server:
    """`lifecycle serve --no-project --workers 1` on a fresh store."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.url = f"sqlite:///{directory / 'lifecycle.db'}"
        env = {
            **os.environ,
            "LIFECYCLE_DATABASE_URL": self.url,
            "LIFECYCLE_API_KEYS": f"{KEY}:publisher",
            "LIFECYCLE_LOG_LEVEL": "warning",
        }
        serve = ["serve", "--no-project", "--workers", "1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lifecycle", *serve],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("lifecycle serve did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


async def _send_batches(port: int, lines: list[bytes], batch: int, as_array: bool) -> float:
    connection = await _Connection.open(port)
    started = time.perf_counter()
    for start in range(0, len(lines), batch):
        part = lines[start : start + batch]
        if as_array:
            body, content_type = b"[" + b",".join(part) + b"]", "application/json"
        else:
            body, content_type = b"\n".join(part) + b"\n", "application/x-ndjson"
        status, answer = await connection.post(body, content_type)
        if status != 200 or answer.count(b'"recorded"') != len(part):
            raise SystemExit(f"batch at {start}: {status} {answer[:300]!r}")
    return len(lines) / (time.perf_counter() - started)


async def _single_messages(
    port: int, lines: list[bytes], rate: int, seconds: float, connections: int
) -> tuple[list[float], int]:
    pool = [await _Connection.open(port) for _ in range(connections)]
    count = min(int(rate * seconds), len(lines))
    latencies: list[float] = []
    failures = 0
    start = time.perf_counter() + 0.05
    next_number = 0

    async def worker(connection: _Connection) -> None:
        nonlocal failures, next_number
        while next_number < count:
            number = next_number
            next_number += 1
            scheduled = start + number / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status, _ = await connection.post(lines[number], "application/json")
            if status != 200:
                failures += 1
            latencies.append(time.perf_counter() - scheduled)

    await asyncio.gather(*(worker(c) for c in pool))
    return latencies, failures


def _import_rate(lines: list[bytes], directory: Path) -> float:
    from lifecycle.entrypoints.bootstrap import Components
    from lifecycle.service.importer import import_lines
    from lifecycle.settings import Settings

    settings = Settings(database_url=f"sqlite:///{directory / 'lifecycle.db'}")
    app = Components(settings).application()
    try:
        started = time.perf_counter()
        report = import_lines(
            app, lines, rules=settings.message_rules, batch_size=settings.import_batch_size
        )
        elapsed = time.perf_counter() - started
    finally:
        app.close()
    assert report.recorded == len(lines), report.as_dict()
    return len(lines) / elapsed


def _renamed(lines: list[bytes], prefix: str) -> list[bytes]:
    """The same touchpoints under other event ids (a second store sees them afresh)."""
    return [
        line.replace(b'"event_id":"bench-', f'"event_id":"{prefix}-'.encode()) for line in lines
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--touchpoints", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-http-ingest-") as directory:
        work = Path(directory)
        source = write_workload(work / "touchpoints.jsonl", args.touchpoints, args.customers)
        lines = source.read_bytes().splitlines()
        print(
            f"workload: {args.touchpoints} touchpoints over {args.customers} customers; "
            f"HTTP batches of {args.batch}, one connection, lifecycle serve --workers 1\n"
        )
        (work / "import").mkdir()
        imported = _import_rate(lines, work / "import")
        rates = {"lifecycle import (baseline)": imported}
        for label, as_array in (("POST, JSON lines", False), ("POST, JSON array", True)):
            (work / label).mkdir()
            server = _Server(work / label)
            try:
                rates[label] = asyncio.run(_send_batches(server.port, lines, args.batch, as_array))
            finally:
                server.stop()
        print(f"{'path':<30} {'touchpoints/s':>14} {'of import':>10}")
        for label, rate in rates.items():
            print(f"{label:<30} {rate:>14,.0f} {rate / imported:>10.0%}")

        (work / "single").mkdir()
        server = _Server(work / "single")
        try:
            singles = _renamed(lines, "single")
            asyncio.run(_single_messages(server.port, singles[:400], args.rate, 2, 2))  # warm-up
            cpu_before = _server_cpu_seconds(server.process.pid)
            latencies, failures = asyncio.run(
                _single_messages(
                    server.port, singles[400:], args.rate, args.seconds, args.connections
                )
            )
            cpu_after = _server_cpu_seconds(server.process.pid)
        finally:
            server.stop()
        cpu = (
            f", server CPU {(cpu_after - cpu_before) / len(latencies) * 1000:.2f} ms/request"
            if cpu_before is not None and cpu_after is not None
            else ""
        )
        print(
            f"\nsingle messages at {args.rate}/s for {args.seconds:g} s: "
            f"{len(latencies)} requests, p50 {_quantile(latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {_quantile(latencies, 0.99) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms, non-200 {failures}{cpu}"
        )
        print(json.dumps({"rates": rates, "p99_ms": _quantile(latencies, 0.99) * 1000}))


if __name__ == "__main__":
    main()
