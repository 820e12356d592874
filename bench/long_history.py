"""Cost against the length of a history (issue 11): one customer with N touchpoints
beside the same N spread over many customers, for N = 1,000, 10,000 and 100,000.

    .venv/bin/python -m bench.long_history [--sizes 1000,10000,100000] [--stores sqlite]

Each line imports the same kind of workload (``bench.workload``) through the batch path
(``import_lines``, batches of 5,000) into a fresh store and prints touchpoints per
second and the bytes the store holds per touchpoint (every table: events, snapshots,
touchpoint keys, tracking, indexes; on SQLite the file after a checkpoint), with the
snapshots' share. Target: the one-customer figures within 20 % of the spread ones.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from bench.arguments import benchmark_parser
from bench.ingest import database
from bench.workload import write_workload

SPREAD_PER_CUSTOMER = 10


@dataclass(frozen=True)
class Measure:
    rate: float
    bytes_per_touchpoint: float
    snapshot_bytes_per_touchpoint: float


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--stores", default="sqlite", help="sqlite, postgres or both")
    args = parser.parse_args()
    from lifecycle.logs import configure_logging

    configure_logging("json", "warning")
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-long-") as directory:
        work = Path(directory)
        print(
            f"{'store':<9} {'touchpoints':>11} | {'one customer':>26} | "
            f"{'spread (10 a customer)':>26} | {'rate':>6} {'bytes':>6}"
        )
        print(
            f"{'':<9} {'':>11} | {'/s':>8} {'B/tp':>7} {'snap B/tp':>9} | "
            f"{'/s':>8} {'B/tp':>7} {'snap B/tp':>9} | {'one/spread':>13}"
        )
        for store in args.stores.split(","):
            for size in sizes:
                one = measure(store, work, size, customers=1)
                spread = measure(store, work, size, customers=max(size // SPREAD_PER_CUSTOMER, 1))
                print(
                    f"{store:<9} {size:>11,} | {one.rate:>8,.0f} {one.bytes_per_touchpoint:>7,.0f} "
                    f"{one.snapshot_bytes_per_touchpoint:>9,.0f} | {spread.rate:>8,.0f} "
                    f"{spread.bytes_per_touchpoint:>7,.0f} "
                    f"{spread.snapshot_bytes_per_touchpoint:>9,.0f} | "
                    f"{one.rate / spread.rate:>6.0%} "
                    f"{one.bytes_per_touchpoint / spread.bytes_per_touchpoint:>6.0%}",
                    flush=True,
                )


def measure(store: str, work: Path, touchpoints: int, customers: int) -> Measure:
    from lifecycle.domain.messages import MessageRules
    from lifecycle.entrypoints.bootstrap import Components
    from lifecycle.service.importer import import_lines
    from lifecycle.settings import Settings

    source = write_workload(work / f"{touchpoints}-{customers}.jsonl", touchpoints, customers)
    with database(store, work) as url:
        app = Components(Settings(database_url=url)).application()
        try:
            with source.open("rb") as lines:
                started = time.perf_counter()
                report = import_lines(app, lines, rules=MessageRules(), batch_size=5_000)
                elapsed = time.perf_counter() - started
        finally:
            app.close()
        assert report.recorded == touchpoints, report
        total, snapshots = stored_bytes(url)
    return Measure(touchpoints / elapsed, total / touchpoints, snapshots / touchpoints)


def stored_bytes(url: str) -> tuple[int, int]:
    """Bytes of the whole store, and of its snapshots."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        with closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            snapshots = db.execute(
                "SELECT COALESCE(SUM(LENGTH(state)), 0) FROM stored_snapshots"
            ).fetchone()[0]
        files = path.parent.glob(f"{path.stem}*{path.suffix}")
        return sum(file.stat().st_size for file in files), int(snapshots)
    import psycopg

    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT SUM(pg_total_relation_size(oid)) FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        ).fetchone()
        snapshots = db.execute("SELECT pg_total_relation_size('lifecycle_snapshots')").fetchone()
    assert row is not None and snapshots is not None
    return int(row[0]), int(snapshots[0])


if __name__ == "__main__":
    main()
