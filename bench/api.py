"""Read API benchmark (issue 4): p50/p99 latency of the summary and list routes over
HTTP on loopback, at a fixed request rate (open loop: each request is sent at its
scheduled time whatever the previous ones did), beside /healthz at the same rate as the
baseline of the HTTP stack alone.

    .venv/bin/python -m bench.api [--rate 300] [--seconds 20] [--workers N]

Uses the store bench.projections built (1,000,000 touchpoints over 100,000 customers by
default) with its read models projected; `lifecycle serve --no-project` runs in its own
process(es), with its default number of workers unless --workers is given. Latency is
measured from the scheduled send time to the end of the response; the server's CPU time
per request (all its processes, from /proc on Linux) is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.projections import build_store

KEY = "bench-reader"
CONNECTIONS = 8


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _Connection:
    """A minimal HTTP/1.1 keep-alive client connection: the load generator shares two
    cores with the server, so it must cost far less per request than the server does."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def get(self, path: str) -> int:
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status


async def _phase(
    connections: list[_Connection], paths: list[str], rate: int, seconds: float
) -> tuple[list[float], int]:
    """Send request n at start + n/rate on a free connection; latency counts from the
    scheduled time, so a server falling behind shows (no coordinated omission)."""
    latencies: list[float] = []
    failures = 0
    count = int(rate * seconds)
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
            if await connection.get(paths[number % len(paths)]) != 200:
                failures += 1
            latencies.append(time.perf_counter() - scheduled)

    await asyncio.gather(*(worker(c) for c in connections))
    return latencies, failures


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _server_cpu_seconds(pid: int) -> float | None:
    """CPU time of the server and the processes it started (its workers), from /proc
    (Linux); None elsewhere."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = 0
        for process in [str(pid), *children]:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


async def _run(port: int, server: int, rate: int, seconds: float, customers: int) -> None:
    rng = random.Random(5)
    ids = [f"cust-{rng.randrange(customers):07d}" for _ in range(2_000)]
    phases = {
        "/healthz (baseline)": ["/healthz"],
        "summary by customer_id": [f"/v1/customers/{c}" for c in ids],
        "list, stage filter": [
            f"/v1/customers?stage={s}&limit=50"
            for s in ("exploration", "awareness", "expansion", "commitment", "dissolution")
        ],
        "list, at-risk filter": ["/v1/customers?at_risk=true&limit=50"],
        "list, next page": [f"/v1/customers?limit=50&cursor={_cursor(c)}" for c in ids[:200]],
    }
    connections = [await _Connection.open(port) for _ in range(CONNECTIONS)]
    await _phase(connections, ["/healthz"], rate, 2)  # warm up
    print(f"{rate} requests/s for {seconds:g} s per route, loopback\n")
    print(
        f"{'route':<26} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'non-200':>8} {'server CPU ms/request':>22}"
    )
    for name, paths in phases.items():
        cpu_before = _server_cpu_seconds(server)
        latencies, failures = await _phase(connections, paths, rate, seconds)
        cpu_after = _server_cpu_seconds(server)
        cpu = (
            f"{(cpu_after - cpu_before) / len(latencies) * 1000:>22.2f}"
            if cpu_before is not None and cpu_after is not None
            else f"{'n/a':>22}"
        )
        print(
            f"{name:<26} {len(latencies):>8} {_quantile(latencies, 0.5) * 1000:>8.2f} "
            f"{_quantile(latencies, 0.99) * 1000:>8.2f} {max(latencies) * 1000:>8.2f} "
            f"{failures:>8} {cpu}"
        )


def _workers(given: int | None) -> int:
    from lifecycle.entrypoints.serve import worker_count
    from lifecycle.settings import Settings

    return worker_count(Settings(**({"api_workers": given} if given else {})))


def _cursor(customer_id: str) -> str:
    import base64
    import json

    raw = json.dumps([customer_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--workers", type=int, help="worker processes of lifecycle serve (default: its default)"
    )
    args = parser.parse_args()

    url = build_store(args.touchpoints, args.customers)
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": url,
        "LIFECYCLE_API_KEYS": f"{KEY}:reader",
        "LIFECYCLE_LOG_LEVEL": "warning",
    }
    catch_up = [sys.executable, "-m", "lifecycle", "project", "--once"]
    subprocess.run(catch_up, env=env, check=True, capture_output=True)
    port = _free_port()
    serve = ["lifecycle", "serve", "--no-project", "--port", str(port)]
    if args.workers is not None:
        serve += ["--workers", str(args.workers)]
    server = subprocess.Popen(
        [sys.executable, "-m", *serve],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        print(f"store: {Path(url.removeprefix('sqlite:///')).parent.name} (SQLite)")
        print(f"server: {' '.join(serve)} ({_workers(args.workers)} workers)")
        asyncio.run(_run(port, server.pid, args.rate, args.seconds, args.customers))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
