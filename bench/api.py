"""Read API benchmark (issues 4 and 12): for every route, the server's CPU time per
request when requests come one at a time (sequential) and under a fixed request rate
(open loop: each request is sent at its scheduled time whatever the previous ones did),
side by side, with the loaded p50/p99 latency over HTTP on loopback; /healthz is the
baseline of the HTTP stack alone. The first request of each route is timed apart ("first
ms": it pays for what is computed once per position, such as the case figures).

    .venv/bin/python -m bench.api [--rate 300] [--seconds 20] [--workers N]
                                  [--only ROUTE ...] [--py-spy DIR]

Uses the store bench.projections built (1,000,000 touchpoints over 100,000 customers by
default) with its read models projected; `lifecycle serve --no-project` runs in its own
process(es), with its default number of workers unless --workers is given. Latency is
measured from the scheduled send time to the end of the response; CPU time is that of
all the server's processes, from /proc on Linux. The sequential phase sends --sequential
requests over one keep-alive connection, each once the previous one was answered.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.projections import build_store

KEYS = {"reader": "bench-reader", "auditor": "bench-auditor", "admin": "bench-admin"}
CONNECTIONS = 8


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Route:
    name: str
    paths: list[str]
    role: str = "reader"
    held: bool = False
    """Send back the ETag of each path's first answer (If-None-Match): the 304 path."""


class _Connection:
    """A minimal HTTP/1.1 keep-alive client connection: the load generator shares two
    cores with the server, so it must cost far less per request than the server does."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def get(self, path: str, key: str, etag: str | None = None) -> tuple[int, str | None]:
        """Status and ETag of a GET."""
        held = f"If-None-Match: {etag}\r\n" if etag else ""
        request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
        self.writer.write(f"{request}{held}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        tag = None
        for line in head.split(b"\r\n"):
            lowered = line.lower()
            if lowered.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            elif lowered.startswith(b"etag:"):
                tag = line.split(b":", 1)[1].strip().decode()
        await self.reader.readexactly(length)
        return status, tag


async def _sequential(
    connection: _Connection, route: Route, count: int, tags: dict[str, str]
) -> int:
    """``count`` requests one after another; the number not answered as expected."""
    failures = 0
    for number in range(count):
        failures += not await _send(connection, route, number, tags)
    return failures


async def _send(connection: _Connection, route: Route, number: int, tags: dict[str, str]) -> bool:
    path = route.paths[number % len(route.paths)]
    status, _ = await connection.get(path, KEYS[route.role], tags.get(path))
    return status == (304 if route.held else 200)


async def _loaded(
    connections: list[_Connection], route: Route, rate: int, seconds: float, tags: dict[str, str]
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
            failures += not await _send(connection, route, number, tags)
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


def routes(customers: int) -> list[Route]:
    rng = random.Random(5)
    ids = [f"cust-{rng.randrange(customers):07d}" for _ in range(2_000)]
    as_of = "as_of=2025-01-01T00:00:00Z"
    return [
        Route("/healthz (baseline)", ["/healthz"]),
        Route("summary by customer_id", [f"/v1/customers/{c}" for c in ids]),
        Route("summary, ETag held (304)", [f"/v1/customers/{c}?{as_of}" for c in ids], held=True),
        Route(
            "list, stage filter",
            [
                f"/v1/customers?stage={s}&limit=50"
                for s in ("exploration", "awareness", "expansion", "commitment", "dissolution")
            ],
        ),
        Route("list, at-risk filter", ["/v1/customers?at_risk=true&limit=50"]),
        Route(
            "list, next page", [f"/v1/customers?limit=50&cursor={_cursor(c)}" for c in ids[:200]]
        ),
        Route("purchase pattern", [f"/v1/customers/{c}/purchase-pattern" for c in ids]),
        Route("funnel", ["/v1/funnel"]),
        Route("complaints", ["/v1/complaints?limit=50"]),
        Route("inquiries", ["/v1/inquiries?limit=50"]),
        Route("follow-ups, 30 days", ["/v1/follow-ups?since=2024-12-01&before=2024-12-31"]),
        Route("history (auditor)", [f"/v1/customers/{c}/history" for c in ids], role="auditor"),
        Route("state (auditor)", [f"/v1/customers/{c}/state" for c in ids], role="auditor"),
        Route("projections (admin)", ["/v1/projections"], role="admin"),
    ]


async def _run(
    port: int,
    server: int,
    chosen: list[Route],
    rate: int,
    seconds: float,
    sequential: int,
    profile: Path | None,
) -> None:
    warm_up = Route("warm-up", ["/healthz"])
    await _loaded(await _connections(port, CONNECTIONS), warm_up, rate, 2, {})
    print(
        f"sequential: {sequential} requests per route, one at a time; "
        f"loaded: {rate} requests/s for {seconds:g} s per route, {CONNECTIONS} connections, "
        "loopback\n"
    )
    print(
        f"{'route':<28} {'first ms':>8} {'seq. CPU ms':>11} {'loaded CPU ms':>13} {'ratio':>6} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'failed':>6}"
    )
    for route in chosen:
        # Fresh connections for each phase: the server closes those idle for 5 s.
        (alone,) = await _connections(port, 1)
        # The first answer of a route pays for what is kept per position (the case
        # figures): timed apart, so that the phases show the cost of every other one.
        started = time.perf_counter()
        await alone.get(route.paths[0], KEYS[route.role])
        first = time.perf_counter() - started
        tags: dict[str, str] = {}
        if route.held:
            for path in route.paths:
                tag = (await alone.get(path, KEYS[route.role]))[1]
                if tag is not None:
                    tags[path] = tag
        cpu_start = _server_cpu_seconds(server)
        failures = await _sequential(alone, route, sequential, tags)
        cpu_middle = _server_cpu_seconds(server)
        connections = await _connections(port, CONNECTIONS)
        spy = _start_py_spy(server, profile, route, seconds) if profile else None
        latencies, loaded_failures = await _loaded(connections, route, rate, seconds, tags)
        cpu_end = _server_cpu_seconds(server)
        if spy is not None:
            spy.wait()
        if cpu_start is None or cpu_middle is None or cpu_end is None:
            cpu = f"{'n/a':>11} {'n/a':>13} {'':>6}"
        else:
            one_by_one = (cpu_middle - cpu_start) / sequential * 1000
            loaded = (cpu_end - cpu_middle) / len(latencies) * 1000
            cpu = f"{one_by_one:>11.2f} {loaded:>13.2f} {loaded / one_by_one:>6.2f}"
        print(
            f"{route.name:<28} {first * 1000:>8.1f} {cpu} {_quantile(latencies, 0.5) * 1000:>8.2f} "
            f"{_quantile(latencies, 0.99) * 1000:>8.2f} {max(latencies) * 1000:>8.2f} "
            f"{failures + loaded_failures:>6}",
            flush=True,
        )


async def _connections(port: int, count: int) -> list[_Connection]:
    return [await _Connection.open(port) for _ in range(count)]


def _start_py_spy(
    server: int, directory: Path, route: Route, seconds: float
) -> subprocess.Popen[bytes]:
    """py-spy sampling the server (and its workers) during the loaded phase, collapsed
    stacks to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() else "-" for c in route.name).strip("-")
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--subprocesses",
            "--nonblocking",
            "--gil",
            "--format",
            "raw",
            "--duration",
            str(int(seconds)),
            "--pid",
            str(server),
            "--output",
            str(directory / f"{name}.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _workers(given: int | None) -> int:
    from lifecycle.entrypoints.serve import worker_count
    from lifecycle.settings import Settings

    return worker_count(Settings(**({"api_workers": given} if given else {})))


def _cursor(customer_id: str) -> str:
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
        "--sequential", type=int, default=300, help="requests per route sent one at a time"
    )
    parser.add_argument(
        "--workers", type=int, help="worker processes of lifecycle serve (default: its default)"
    )
    parser.add_argument("--only", nargs="+", metavar="ROUTE", help="routes whose name starts so")
    parser.add_argument(
        "--py-spy", type=Path, metavar="DIR", help="profile each loaded phase into DIR (py-spy)"
    )
    args = parser.parse_args()

    chosen = [
        route
        for route in routes(args.customers)
        if not args.only or any(route.name.startswith(prefix) for prefix in args.only)
    ]
    url = build_store(args.touchpoints, args.customers)
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": url,
        "LIFECYCLE_API_KEYS": ",".join(f"{key}:{role}" for role, key in KEYS.items()),
        "LIFECYCLE_LOG_LEVEL": "warning",
    }
    lifecycle = [sys.executable, "-m", "lifecycle"]
    if not Path(url.removeprefix("sqlite:///")).with_name("lifecycle.summary.db").exists():
        # A rebuild shared between processes, committing at the end, projects a fresh
        # store far sooner than a catch-up committing every second.
        subprocess.run([*lifecycle, "replay"], env=env, check=True, capture_output=True)
    subprocess.run([*lifecycle, "project", "--once"], env=env, check=True, capture_output=True)
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
        store = Path(url.removeprefix("sqlite:///")).parent.name
        print(f"store: {store} (SQLite), {args.customers:,} customers")
        print(f"server: {' '.join(serve)} ({_workers(args.workers)} workers)")
        asyncio.run(
            _run(port, server.pid, chosen, args.rate, args.seconds, args.sequential, args.py_spy)
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
