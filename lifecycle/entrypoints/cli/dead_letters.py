"""``lifecycle dead-letters``: what the dead-letter topic holds, and its re-drive
(Contract 6). ``list`` reads the topic and changes nothing; ``redrive`` publishes chosen
dead letters to the touchpoint topic again, each message once unless ``--again``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, TypeVar

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.entrypoints.cli.common import UsageError, add_common_options, settings_from
from lifecycle.entrypoints.cli.kafka import bootstrap_option
from lifecycle.settings import Settings

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "dead-letters",
        help="list the dead-letter topic, re-drive its messages",
        description="Dead letters are touchpoint messages the consumer could not record, "
        "kept whole on LIFECYCLE_KAFKA_DEAD_LETTER_TOPIC with the reason. After a fix "
        "upstream or an upgrade of the engine, re-drive them to the touchpoint topic.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        help="every dead letter: offset, time, key, error, source, redrive count",
        description="Reads the dead-letter topic from its beginning (LIFECYCLE_KAFKA_BOOTSTRAP "
        "or the embedded broker's port) and changes nothing. The redrive count is how many "
        "times the message has been re-driven.",
    )
    _choice_options(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per dead letter")
    bootstrap_option(listing)
    add_common_options(listing)
    listing.set_defaults(handler=list_command)

    redrive = actions.add_parser(
        "redrive",
        help="publish dead letters to the touchpoint topic again",
        description="Publishes each chosen dead letter's original key, value and headers to "
        "the touchpoint topic (LIFECYCLE_KAFKA_TOUCHPOINTS_TOPIC) with the headers "
        "redriven_from_offset and redrive_count, and remembers it (lifecycle.redrives.db "
        "beside a SQLite store, a table on PostgreSQL): a message re-driven before is "
        "passed over unless --again. Recording is idempotent, so a re-drive never records "
        "a touchpoint twice; a message that fails again returns to the dead-letter topic "
        "with its count raised.",
    )
    _choice_options(redrive)
    redrive.add_argument(
        "--offset",
        dest="offsets",
        type=_offset,
        action="append",
        default=[],
        metavar="N",
        help="only the dead letter at offset N (repeatable)",
    )
    redrive.add_argument(
        "--again", action="store_true", help="re-drive messages re-driven before as well"
    )
    redrive.add_argument("--json", action="store_true", help="print what was done as JSON")
    bootstrap_option(redrive)
    add_common_options(redrive)
    redrive.set_defaults(handler=redrive_command)


def _choice_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--code",
        metavar="CODE",
        help="only dead letters with this error code (e.g. unsupported_schema_version)",
    )


def _offset(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an offset") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an offset (0 or more)")
    return value


# Commands ------------------------------------------------------------------------------


def list_command(args: argparse.Namespace) -> int:
    from consumers.dead_letters import choose

    settings = settings_from(args)
    topic = Components(settings).topics().dead_letters
    letters = choose(_read(settings, topic), code=args.code)
    memory = Components(settings).redrive_log(read_only=True)
    try:
        counts = memory.counts({letter.identity for letter in letters})
    finally:
        memory.close()
    shown = [letter.as_dict(counts.get(letter.identity, 0)) for letter in letters]
    if args.json:
        for row in shown:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    if not shown:
        print(f"no dead letters on {topic}" + (f" with code {args.code}" if args.code else ""))
        return 0
    print(
        f"{'offset':>7}  {'time (UTC)':<19}  {'key':<16}  {'error code':<26}  "
        f"{'source':>10}  {'redrives':>8}  reason"
    )
    for letter, row in zip(letters, shown, strict=True):
        time = letter.timestamp.strftime("%Y-%m-%dT%H:%M:%S") if letter.timestamp else "-"
        source = f"{row['source_partition']}@{row['source_offset']}"
        print(
            f"{row['offset']:>7}  {time:<19}  {_short(row['key'], 16):<16}  "
            f"{row['error_code']:<26}  {source:>10}  {row['redrive_count']:>8}  "
            f"{row['error_reason']}"
        )
    print(f"{len(shown)} dead letters on {topic}")
    return 0


def redrive_command(args: argparse.Namespace) -> int:
    from consumers.clients import new_producer
    from consumers.dead_letters import choose, redrive

    settings = settings_from(args)
    topics = Components(settings).topics()
    letters = choose(_read(settings, topics.dead_letters), code=args.code, offsets=args.offsets)
    missing = sorted(set(args.offsets) - {letter.offset for letter in letters})
    if missing:
        raise UsageError(
            f"no dead letter{'s' if len(missing) > 1 else ''} at offset "
            f"{', '.join(map(str, missing))} on {topics.dead_letters}"
            + (f" with code {args.code}" if args.code else "")
        )
    producer = _connected(
        settings, lambda: new_producer(settings.bootstrap_servers, "lifecycle-redrive")
    )
    memory = Components(settings).redrive_log()
    try:
        report = redrive(letters, producer, topics.touchpoints, memory, again=args.again)
    finally:
        memory.close()
        producer.close()
    if args.json:
        print(json.dumps({**report.as_dict(), "topic": topics.touchpoints}))
        return 0
    print(
        f"re-drove {len(report.redriven)} dead letters to {topics.touchpoints}; passed over "
        f"{report.already_redriven} re-driven before (--again re-drives them), "
        f"{report.repeats} repeats of a message, {report.without_value} without a value"
    )
    return 0


def _read(settings: Settings, topic: str) -> list[Any]:
    from consumers.clients import new_consumer
    from consumers.dead_letters import read_dead_letters

    consumer = _connected(
        settings, lambda: new_consumer(settings.bootstrap_servers, "lifecycle-dead-letters")
    )
    try:
        return read_dead_letters(consumer, topic)
    finally:
        consumer.close()


def _connected(settings: Settings, connect: Callable[[], T]) -> T:
    """A Kafka client, or ``BrokerError`` naming the cluster it could not reach."""
    from consumers.broker import BrokerError
    from consumers.faults import is_broker_fault

    try:
        return connect()
    except Exception as error:
        if is_broker_fault(error):
            raise BrokerError(
                f"cannot reach Kafka at {settings.bootstrap_servers}: {error}"
            ) from None
        raise


def _short(text: str | None, width: int) -> str:
    if text is None:
        return "-"
    return text if len(text) <= width else text[: width - 1] + "…"
