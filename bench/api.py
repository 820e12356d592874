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

import asyncio
import base64
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.arguments import add_load, benchmark_parser
from bench.loopback import (
    Connection,
    connections,
    cpu_ms_per_request,
    latency_columns,
    open_loop,
    served,
    server_cpu_seconds,
)
from bench.projections import build_store

KEYS = {"reader": "bench-reader", "auditor": "bench-auditor", "admin": "bench-admin"}
CONNECTIONS = 8


@dataclass(frozen=True)
class Route:
    name: str
    paths: list[str]
    role: str = "reader"
    held: bool = False
    """Send back the ETag of each path's first answer (If-None-Match): the 304 path."""


async def _sequential(
    connection: Connection, route: Route, count: int, tags: dict[str, str]
) -> int:
    """``count`` requests one after another; the number not answered as expected."""
    failures = 0
    for number in range(count):
        failures += not await _send(connection, route, number, tags)
    return failures


async def _send(connection: Connection, route: Route, number: int, tags: dict[str, str]) -> bool:
    path = route.paths[number % len(route.paths)]
    status, _ = await connection.get(path, KEYS[route.role], tags.get(path))
    return status == (304 if route.held else 200)


async def _loaded(
    pool: list[Connection], route: Route, rate: int, seconds: float, tags: dict[str, str]
) -> tuple[list[float], int]:
    """``route`` at ``rate`` requests/s for ``seconds``, open loop: the latencies and the
    number of requests not answered as expected."""

    async def send(connection: Connection, number: int) -> bool:
        return await _send(connection, route, number, tags)

    return await open_loop(pool, rate, int(rate * seconds), send)


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
    await _loaded(await connections(port, CONNECTIONS), warm_up, rate, 2, {})
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
        (alone,) = await connections(port, 1)
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
        cpu_start = server_cpu_seconds(server)
        failures = await _sequential(alone, route, sequential, tags)
        cpu_middle = server_cpu_seconds(server)
        pool = await connections(port, CONNECTIONS)
        spy = _start_py_spy(server, profile, route, seconds) if profile else None
        latencies, loaded_failures = await _loaded(pool, route, rate, seconds, tags)
        cpu_end = server_cpu_seconds(server)
        if spy is not None:
            spy.wait()
        one_by_one = cpu_ms_per_request(cpu_start, cpu_middle, sequential)
        loaded = cpu_ms_per_request(cpu_middle, cpu_end, len(latencies))
        if one_by_one is None or loaded is None:
            cpu = f"{'n/a':>11} {'n/a':>13} {'':>6}"
        else:
            cpu = f"{one_by_one:>11.2f} {loaded:>13.2f} {loaded / one_by_one:>6.2f}"
        print(
            f"{route.name:<28} {first * 1000:>8.1f} {cpu} {latency_columns(latencies)} "
            f"{failures + loaded_failures:>6}",
            flush=True,
        )


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
    parser = benchmark_parser(__doc__, touchpoints=1_000_000, customers=100_000)
    add_load(parser, rate=300, seconds=20)
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
    workers = [] if args.workers is None else ["--workers", str(args.workers)]
    with served(env, *workers) as server:
        store = Path(url.removeprefix("sqlite:///")).parent.name
        print(f"store: {store} (SQLite), {args.customers:,} customers")
        print(f"server: {' '.join(server.command)} ({_workers(args.workers)} workers)")
        asyncio.run(
            _run(
                server.port,
                server.process.pid,
                chosen,
                args.rate,
                args.seconds,
                args.sequential,
                args.py_spy,
            )
        )


if __name__ == "__main__":
    main()
