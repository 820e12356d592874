"""Analytics benchmark (issue 14): the fit of both models, predictions for every
customer, and the read API's predictions route, each beside a baseline of the same run:
reading the purchase-pattern rows alone (for the fit and the predictions), and the
purchase-pattern route, which reads one such row, (for the predictions route).

    .venv/bin/python -m bench.analytics [--touchpoints 1000000] [--customers 100000]
                                        [--rate 300] [--seconds 20] [--workers N]

Uses the store bench.projections builds (1,000,000 touchpoints over 100,000 customers
by default, two years ending 2024-12-31), its read models projected. In this process:
reading the purchase days of every customer (the baseline), their patterns as of the
observation end, each model's fit, and the predictions for every customer (vectorised,
best of three). Then ``lifecycle analytics fit`` as an operator runs it (a subprocess:
catch-up, read, fit, record the fit, write the predictions), and the API at a fixed
request rate as bench.api loads it.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from typing import TypeVar

from bench.api import KEYS, Route, _loaded
from bench.arguments import add_load, benchmark_parser
from bench.loopback import (
    connections,
    cpu_ms_per_request,
    latency_columns,
    served,
    server_cpu_seconds,
)
from bench.projections import build_store

OBSERVATION_END = date(2024, 12, 31)
PERIOD_DAYS = 7
T = TypeVar("T")


def timed(step: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = step()
    return result, time.perf_counter() - started


def in_process(url: str) -> None:
    from lifecycle.analytics.btyd import fit_bgnbd, fit_gamma_gamma
    from lifecycle.analytics.service import predict, summarise
    from lifecycle.entrypoints.bootstrap import Components
    from lifecycle.settings import Settings
    from projections.purchases import Purchases, PurchasesView
    from projections.wiring import close_view

    components = Components(Settings(database_url=url, log_level="warning"))
    view: PurchasesView = components.open_view(Purchases)  # type: ignore[assignment]
    try:
        (histories, _), read = timed(view.histories)
    finally:
        close_view(view)
    customers, summarised = timed(lambda: summarise(histories, OBSERVATION_END))
    x, t_x, age = customers.periods(PERIOD_DAYS)
    bg_nbd, bg_seconds = timed(lambda: fit_bgnbd(x, t_x, age))
    buyers = customers.repeat_buyers()
    gamma_gamma, gg_seconds = timed(
        lambda: fit_gamma_gamma(customers.frequency[buyers], customers.monetary_value[buyers])
    )
    predicting = min(
        timed(
            lambda: predict(
                bg_nbd.parameters,
                gamma_gamma.parameters,
                customers.frequency,
                customers.recency,
                customers.age,
                customers.monetary_value,
                period_days=PERIOD_DAYS,
            )
        )[1]
        for _ in range(3)
    )
    count = len(customers)
    print(
        f"{len(histories):,} customers' purchase days, {count:,} with a purchase by "
        f"{OBSERVATION_END} ({int(buyers.sum()):,} repeat buyers)\n"
    )
    print(f"{'step':<52} {'seconds':>8} {'customers/s':>12}")
    rows = (
        ("read the purchase-pattern rows (baseline)", read, len(histories)),
        ("their patterns as of the observation end", summarised, count),
        (f"fit BG/NBD ({bg_nbd.iterations} iterations)", bg_seconds, count),
        (f"fit Gamma-Gamma ({gamma_gamma.iterations} iterations)", gg_seconds, int(buyers.sum())),
        ("both fits", bg_seconds + gg_seconds, count),
        ("predictions for every customer (90 days, best of 3)", predicting, count),
    )
    for name, seconds, n in rows:
        print(f"{name:<52} {seconds:>8.2f} {n / seconds:>12,.0f}")
    print(f"\nBG/NBD converged: {bg_nbd.converged} ({bg_nbd.message})")
    print(f"Gamma-Gamma converged: {gamma_gamma.converged} ({gamma_gamma.message})")


async def load_api(port: int, server: int, rate: int, seconds: float, customers: int) -> None:
    rng = random.Random(5)
    ids = [f"cust-{rng.randrange(customers):07d}" for _ in range(2_000)]
    phases = {
        "/healthz (baseline)": ["/healthz"],
        "purchase pattern (baseline)": [f"/v1/customers/{c}/purchase-pattern" for c in ids],
        "predictions, 90 days": [f"/v1/customers/{c}/predictions" for c in ids],
        "predictions, 365 days": [f"/v1/customers/{c}/predictions?horizon_days=365" for c in ids],
    }
    pool = await connections(port, 8)
    await _loaded(pool, Route("warm-up", ["/healthz"]), rate, 2, {})
    print(f"\n{rate} requests/s (unless said) for {seconds:g} s per route, loopback\n")
    print(
        f"{'route':<34} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'non-200':>8} {'server CPU ms/request':>22}"
    )
    # A list filtered on p_alive reads summaries along customer_id until a page is full:
    # not a route the target is for, so at a tenth of the rate.
    phases[f"list, p_alive_below=0.3 ({rate // 10}/s)"] = [
        "/v1/customers?p_alive_below=0.3&limit=50"
    ]
    for name, paths in phases.items():
        at = rate // 10 if name.startswith("list") else rate
        cpu_before = server_cpu_seconds(server)
        latencies, failures = await _loaded(pool, Route(name, paths), at, seconds, {})
        cpu = cpu_ms_per_request(cpu_before, server_cpu_seconds(server), len(latencies))
        print(
            f"{name:<34} {len(latencies):>8} {latency_columns(latencies)} {failures:>8} "
            + (f"{'n/a':>22}" if cpu is None else f"{cpu:>22.2f}")
        )


def main() -> None:
    parser = benchmark_parser(__doc__, touchpoints=1_000_000, customers=100_000)
    add_load(parser, rate=300, seconds=20)
    parser.add_argument("--workers", type=int, help="worker processes of lifecycle serve")
    args = parser.parse_args()

    url = build_store(args.touchpoints, args.customers)
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": url,
        "LIFECYCLE_API_KEYS": f"{KEYS['reader']}:reader",
        "LIFECYCLE_LOG_LEVEL": "warning",
    }
    lifecycle = [sys.executable, "-m", "lifecycle"]
    subprocess.run([*lifecycle, "project", "--once"], env=env, check=True, capture_output=True)
    print(f"store: {args.touchpoints:,} touchpoints over {args.customers:,} customers (SQLite)")
    in_process(url)

    fit = [*lifecycle, "analytics", "fit", "--observation-end", str(OBSERVATION_END)]
    done, seconds = timed(
        lambda: subprocess.run(fit, env=env, check=True, capture_output=True, text=True)
    )
    print(f"\n`lifecycle analytics fit` (process start to exit): {seconds:.1f} s")
    print(done.stdout.rstrip())

    workers = [] if args.workers is None else ["--workers", str(args.workers)]
    with served(env, *workers) as server:
        asyncio.run(
            load_api(server.port, server.process.pid, args.rate, args.seconds, args.customers)
        )


if __name__ == "__main__":
    main()
