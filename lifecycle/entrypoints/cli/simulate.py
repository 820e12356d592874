"""``lifecycle demo`` and ``lifecycle simulate``: a seeded customer population, recorded
month by month with the inactivity sweep at each month's end, then a summary of where
the relationships stand and which rules moved them.

The demo ingests the way production does: each month is published to the touchpoint
topic (the embedded broker, or ``LIFECYCLE_KAFKA_BOOTSTRAP`` with topics of its own)
and consumed by the touchpoint consumer before that month's sweep; ``--direct``
records without Kafka."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifecycle.domain.vocabulary import Stage
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.entrypoints.cli.common import positive_int, progress, settings_from
from lifecycle.entrypoints.cli.spec import Command, Option
from lifecycle.simulation import BROKEN_MESSAGES, as_json_lines, simulate_population

if TYPE_CHECKING:
    from lifecycle.service.application import LifecycleApplication
    from lifecycle.service.importer import ImportReport
    from lifecycle.settings import Settings

DEMO_DIRECTORY = Path("lifecycle-demo")
CANDIDATE_EXAMPLE = "candidate-example.toml"
"""A sample candidate policy shipped with the engine, which the demo compares."""


POPULATION = (
    Option("--customers", type=positive_int, default=2000, help="default 2000"),
    Option("--years", type=float, default=2.0, help="simulated years (default 2)"),
    Option("--seed", type=int, default=7, help="random seed (default 7)"),
)


def commands() -> Sequence[Command]:
    return (
        Command(
            "demo",
            demo_command,
            help="simulate a customer population, record it, and show the lifecycle",
            description="Simulates a seeded customer population over the last YEARS years, "
            "records it month by month with the inactivity sweep, and prints stage counts and "
            "rule firings. Unless --database-url is given it starts afresh in "
            f"./{DEMO_DIRECTORY}/.",
            options=(
                *POPULATION,
                Option(
                    "--direct",
                    action="store_true",
                    help="record directly instead of through Kafka",
                ),
                Option(
                    "--no-serve",
                    action="store_true",
                    help="end after the summary instead of serving the read API with a printed "
                    "reader key",
                ),
            ),
        ),
        Command(
            "simulate",
            simulate_command,
            help="write a simulated population as JSON lines (Contract 1)",
            options=(
                *POPULATION,
                Option("--out", default="-", metavar="FILE", help="default: standard output"),
            ),
            store_options=False,
        ),
    )


def simulate_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.clock import utc_now

    messages = simulate_population(args.customers, end=utc_now(), years=args.years, seed=args.seed)
    out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")  # noqa: SIM115
    try:
        for line in as_json_lines(messages):
            out.write(line + b"\n")
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    return 0


def demo_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.clock import utc_now
    from lifecycle.logs import configure_logging

    if args.database_url is None:
        shutil.rmtree(DEMO_DIRECTORY, ignore_errors=True)
        args.database_url = f"sqlite:///{DEMO_DIRECTORY / 'lifecycle.db'}"
    settings = settings_from(args)
    if "LIFECYCLE_LOG_LEVEL" not in os.environ:
        # The demo's output is its summary: a log line per consumed batch would bury it.
        configure_logging(settings.log_format, "warning")
    end = utc_now()
    messages = simulate_population(args.customers, end=end, years=args.years, seed=args.seed)
    print(
        f"simulated {args.customers} customers over {args.years:g} years: {len(messages)} messages "
        f"(+{len(BROKEN_MESSAGES)} broken ones), recording into {settings.database_url}"
    )
    with closing(Components(settings).application()) as app:
        app.follow_policy()
        started = datetime.now(UTC)
        if args.direct:
            report, swept = record_month_by_month(app, messages, settings.message_rules, end)
        else:
            report, swept = consume_month_by_month(app, settings, messages, end)
        elapsed = (datetime.now(UTC) - started).total_seconds()
        print(
            f"recorded {report.recorded}, duplicates {report.duplicates}, "
            f"rejected {report.rejected} "
            f"({', '.join(sorted(report.rejected_by_code))}) in {elapsed:.1f} s; "
            f"inactivity sweeps dissolved {swept}"
        )
        print_lifecycle_summary(app)
        print_candidate_diff(settings, app, end)
    from lifecycle.entrypoints.read_side import read_side_for_demo

    read_side_for_demo(settings, serve=not args.no_serve)
    return 0


def record_month_by_month(
    app: LifecycleApplication, messages: list[dict[str, Any]], rules: Any, end: datetime
) -> tuple[ImportReport, int]:
    """Record each simulated month, then sweep at its end, as a live engine would."""
    from lifecycle.service.importer import ImportReport, import_lines

    months: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        months.setdefault(message["occurred_at"][:7], []).append(message)
    total = ImportReport()
    swept = 0
    with progress("recording months", len(months)) as advance:
        for month, batch in sorted(months.items()):
            report = import_lines(
                app, as_json_lines(batch), rules=rules, batch_size=5000, clock=lambda: end
            )
            total.add(report)
            swept += app.sweep(min(_month_end(month), end)).dissolved
            advance(1)
    total.add(
        import_lines(app, iter(BROKEN_MESSAGES), rules=rules, batch_size=10, clock=lambda: end)
    )
    return total, swept


def consume_month_by_month(
    app: LifecycleApplication, settings: Settings, messages: list[dict[str, Any]], end: datetime
) -> tuple[ImportReport, int]:
    """Publish each simulated month to Kafka, consume it into the store, then sweep."""
    from consumers.broker import EmbeddedBroker, Topics, ensure_topics, free_port
    from consumers.clients import new_producer
    from consumers.publish import publish_raw
    from lifecycle.service.importer import ImportReport

    stop = threading.Event()
    swept = 0
    with ExitStack() as stack:
        if settings.kafka_bootstrap is None:
            topics = Components(settings).topics()
            bootstrap = stack.enter_context(EmbeddedBroker(free_port(), topics)).bootstrap
            where = f"the embedded broker at {bootstrap}"
        else:
            # A cluster of one's own may hold other data: the demo keeps to new topics.
            run = f"lifecycle-demo-{uuid.uuid4().hex[:8]}"
            topics = Topics(
                f"{run}.touchpoints",
                f"{run}.touchpoints.dlq",
                f"{run}.relationship-events",
                settings.kafka_touchpoint_partitions,
            )
            bootstrap = settings.kafka_bootstrap
            ensure_topics(bootstrap, topics)
            where = f"Kafka at {bootstrap}"
        print(
            f"publishing month by month to {topics.touchpoints} on {where}; "
            f"the consumer records each month before its sweep"
        )
        producer = new_producer(bootstrap, "lifecycle-demo")
        stack.callback(producer.close)
        ingest = Components(settings).ingest(
            app, bootstrap=bootstrap, topics=topics, group_id=f"{topics.touchpoints}.demo"
        )
        stack.enter_context(ingest.open(stop))
        months: dict[str, list[dict[str, Any]]] = {}
        for message in messages:
            months.setdefault(message["occurred_at"][:7], []).append(message)
        with progress("publishing and consuming months", len(months)) as advance:
            for month, batch in sorted(months.items()):
                sent = publish_raw(producer, topics.touchpoints, _keyed(batch))
                ingest.consume_until(sent.next_offsets, stop)
                swept += app.sweep(min(_month_end(month), end)).dissolved
                advance(1)
        broken = publish_raw(
            producer, topics.touchpoints, ((b"cust-x", m) for m in BROKEN_MESSAGES)
        )
        ingest.consume_until(broken.next_offsets, stop)
    stats = ingest.stats
    report = ImportReport(
        lines=stats.messages,
        recorded=stats.recorded,
        duplicates=stats.duplicates,
        rejected=stats.rejected,
        rejected_by_code=Counter(stats.dead_letters),
        stage_changes=Counter(stats.stage_changes),
    )
    print(
        f"consumed {stats.messages} messages; {stats.rejected} dead letters went to "
        f"{topics.dead_letters} with their error code and source offset"
    )
    return report, swept


def _keyed(batch: list[dict[str, Any]]) -> Iterator[tuple[bytes, bytes]]:
    for message, line in zip(batch, as_json_lines(batch), strict=True):
        yield message["customer_id"].encode(), line


def _month_end(month: str) -> datetime:
    year, number = (int(part) for part in month.split("-"))
    first_of_next = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return first_of_next - timedelta(microseconds=1)


def print_lifecycle_summary(app: LifecycleApplication) -> None:
    """Stage counts and rule firings, read from the event log itself."""
    from lifecycle.domain.policy import RULE_IDS
    from lifecycle.service.application import STAGE_CHANGED_TOPICS

    stage_of: dict[Any, str] = {}
    rules: Counter[str] = Counter()
    transitions: Counter[tuple[str, str]] = Counter()
    for relationship_id in app.relationship_ids():
        stage_of[relationship_id] = Stage.EXPLORATION.value
    start = 1
    while True:
        page = app.recorder.select_notifications(start, 5000, topics=STAGE_CHANGED_TOPICS)
        for notification in page:
            change: Any = app.mapper.to_domain_event(notification)
            stage_of[change.originator_id] = change.to_stage
            rules[change.rule] += 1
            transitions[(change.from_stage, change.to_stage)] += 1
        if len(page) < 5000:
            break
        start = page[-1].id + 1
    counts = Counter(stage_of.values())
    print(f"\n{len(stage_of)} relationships by stage:")
    for stage in Stage:
        print(f"  {stage.value:<12} {counts.get(stage.value, 0):>7}")
    print("\nstage changes by rule:")
    for rule in (*RULE_IDS, "reactivation", "manual"):
        if rules.get(rule) or rule in RULE_IDS:
            print(f"  {rule:<16} {rules.get(rule, 0):>7}")
    print("\ntransitions:")
    for (from_stage, to_stage), count in sorted(transitions.items(), key=lambda kv: -kv[1]):
        print(f"  {from_stage:>11} -> {to_stage:<12} {count:>7}")


def print_candidate_diff(settings: Settings, app: LifecycleApplication, now: datetime) -> None:
    """What the sample candidate policy would change (``lifecycle policy diff``),
    inactivity judged at the simulation's end."""
    from lifecycle.domain.policy import PolicyText
    from lifecycle.entrypoints.cli.policy import print_diff
    from projections.whatif import diff_policies

    origin = f"lifecycle/domain/policies/{CANDIDATE_EXAMPLE}"
    candidate = PolicyText.builtin(CANDIDATE_EXAMPLE, origin)
    stream = app.policy_stream()
    assert stream is not None  # the demo recorded: a policy was adopted
    adopted = stream.adopted.document()
    found = diff_policies(Components(settings), adopted, candidate, inactive_at=now)
    print(f"\nwhat if {origin} were adopted? (lifecycle policy diff FILE --now TIME)")
    print_diff(adopted, candidate, found, origin, now)
