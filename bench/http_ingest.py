"""HTTP ingestion benchmark (issue 13): touchpoints/s through `POST /v1/touchpoints` in
batches, beside `lifecycle import`'s rate on the same data in the same run (target: at
least 70 % of it); then single-message requests at a fixed rate, open loop, with their
latency percentiles (target: 200/s with p99 under 50 ms). SQLite.

    .venv/bin/python -m bench.http_ingest [--touchpoints 100000] [--customers 10000]
        [--batch 500] [--rate 200] [--seconds 20]

The baseline is what `lifecycle import` does in one process, timed in this process
without its start-up (the importer's batch path, batches of LIFECYCLE_IMPORT_BATCH_SIZE):
the comparison is then the harder one for HTTP, and a like one, since one server worker
is one process. (`lifecycle import` shares a file this large between processes.)
`lifecycle serve --no-project --workers 1` runs as a subprocess on a fresh store;
batches are sent one after another on one keep-alive connection, as JSON lines
(`application/x-ndjson`) and as JSON arrays; one worker, because the store takes one
writer at a time and two workers would only meet each other's version conflicts.
Latency counts from each request's scheduled time (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from contextlib import AbstractContextManager
from pathlib import Path

from bench.arguments import add_load, benchmark_parser
from bench.loopback import (
    Connection,
    Server,
    connections,
    cpu_ms_per_request,
    open_loop,
    quantile,
    served,
    server_cpu_seconds,
)
from bench.workload import write_workload

KEY = "bench-publisher"
TOUCHPOINTS = "/v1/touchpoints"


def _served(directory: Path) -> AbstractContextManager[Server]:
    """`lifecycle serve --no-project --workers 1` on a fresh store."""
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": f"sqlite:///{directory / 'lifecycle.db'}",
        "LIFECYCLE_API_KEYS": f"{KEY}:publisher",
        "LIFECYCLE_LOG_LEVEL": "warning",
    }
    return served(env, "--workers", "1")


async def _send_batches(port: int, lines: list[bytes], batch: int, as_array: bool) -> float:
    connection = await Connection.open(port)
    started = time.perf_counter()
    for start in range(0, len(lines), batch):
        part = lines[start : start + batch]
        if as_array:
            body, content_type = b"[" + b",".join(part) + b"]", "application/json"
        else:
            body, content_type = b"\n".join(part) + b"\n", "application/x-ndjson"
        status, answer = await connection.post(TOUCHPOINTS, KEY, body, content_type)
        if status != 200 or answer.count(b'"recorded"') != len(part):
            raise SystemExit(f"batch at {start}: {status} {answer[:300]!r}")
    return len(lines) / (time.perf_counter() - started)


async def _single_messages(
    port: int, lines: list[bytes], rate: int, seconds: float, pool_size: int
) -> tuple[list[float], int]:
    pool = await connections(port, pool_size)

    async def send(connection: Connection, number: int) -> bool:
        status, _ = await connection.post(TOUCHPOINTS, KEY, lines[number], "application/json")
        return status == 200

    return await open_loop(pool, rate, min(int(rate * seconds), len(lines)), send)


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
    parser = benchmark_parser(__doc__, touchpoints=100_000, customers=10_000)
    parser.add_argument("--batch", type=int, default=500)
    add_load(parser, rate=200, seconds=20)
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
        rates = {"import, one process (baseline)": imported}
        for label, as_array in (("POST, JSON lines", False), ("POST, JSON array", True)):
            (work / label).mkdir()
            with _served(work / label) as server:
                rates[label] = asyncio.run(_send_batches(server.port, lines, args.batch, as_array))
        print(f"{'path':<30} {'touchpoints/s':>14} {'of import':>10}")
        for label, rate in rates.items():
            print(f"{label:<30} {rate:>14,.0f} {rate / imported:>10.0%}")

        (work / "single").mkdir()
        with _served(work / "single") as server:
            singles = _renamed(lines, "single")
            asyncio.run(_single_messages(server.port, singles[:400], args.rate, 2, 2))  # warm-up
            cpu_before = server_cpu_seconds(server.process.pid)
            latencies, failures = asyncio.run(
                _single_messages(
                    server.port, singles[400:], args.rate, args.seconds, args.connections
                )
            )
            cpu_after = server_cpu_seconds(server.process.pid)
        cpu = cpu_ms_per_request(cpu_before, cpu_after, len(latencies))
        print(
            f"\nsingle messages at {args.rate}/s for {args.seconds:g} s: "
            f"{len(latencies)} requests, p50 {quantile(latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {quantile(latencies, 0.99) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms, non-200 {failures}"
            + ("" if cpu is None else f", server CPU {cpu:.2f} ms/request")
        )
        print(json.dumps({"rates": rates, "p99_ms": quantile(latencies, 0.99) * 1000}))


if __name__ == "__main__":
    main()
