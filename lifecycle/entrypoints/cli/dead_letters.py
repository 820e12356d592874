"""``lifecycle dead-letters``: what the dead-letter topic holds, and its re-drive
(Contract 6). ``list`` reads the topic and changes nothing; ``redrive`` publishes chosen
dead letters to the touchpoint topic again, each message once unless ``--again``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.entrypoints.cli.common import settings_from
from lifecycle.entrypoints.cli.kafka import BOOTSTRAP
from lifecycle.entrypoints.cli.spec import Command, Group, Option, json_option


def commands() -> Sequence[Group]:
    code = Option(
        "--code",
        metavar="CODE",
        help="only dead letters with this error code (e.g. unsupported_schema_version)",
    )
    return (
        Group(
            "dead-letters",
            help="list the dead-letter topic, re-drive its messages",
            description="Dead letters are touchpoint messages the consumer could not record, "
            "kept whole on LIFECYCLE_KAFKA_DEAD_LETTER_TOPIC with the reason. After a fix "
            "upstream or an upgrade of the engine, re-drive them to the touchpoint topic.",
            actions=(
                Command(
                    "list",
                    list_command,
                    help="every dead letter: offset, time, key, error, source, redrive count",
                    description="Reads the dead-letter topic from its beginning "
                    "(LIFECYCLE_KAFKA_BOOTSTRAP or the embedded broker's port) and changes "
                    "nothing. The redrive count is how many times the message has been "
                    "re-driven.",
                    options=(code, json_option("one JSON object per dead letter"), BOOTSTRAP),
                ),
                Command(
                    "redrive",
                    redrive_command,
                    help="publish dead letters to the touchpoint topic again",
                    description="Publishes each chosen dead letter's original key, value and "
                    "headers to the touchpoint topic (LIFECYCLE_KAFKA_TOUCHPOINTS_TOPIC) with "
                    "the headers redriven_from_offset and redrive_count, and remembers it "
                    "(lifecycle.redrives.db beside a SQLite store, a table on PostgreSQL): a "
                    "message re-driven before is passed over unless --again. Recording is "
                    "idempotent, so a re-drive never records a touchpoint twice; a message "
                    "that fails again returns to the dead-letter topic with its count raised.",
                    options=(
                        code,
                        Option(
                            "--offset",
                            dest="offsets",
                            type=_offset,
                            action="append",
                            default=[],
                            metavar="N",
                            help="only the dead letter at offset N (repeatable)",
                        ),
                        Option(
                            "--again",
                            action="store_true",
                            help="re-drive messages re-driven before as well",
                        ),
                        json_option("print what was done as JSON"),
                        BOOTSTRAP,
                    ),
                ),
            ),
        ),
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
    from lifecycle.entrypoints.dead_letters import DeadLetterDesk

    desk = DeadLetterDesk(settings_from(args))
    shown = desk.listed(code=args.code)
    if args.json:
        for row in shown:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    if not shown:
        print(f"no dead letters on {desk.topic}" + (f" with code {args.code}" if args.code else ""))
        return 0
    print(
        f"{'offset':>7}  {'time (UTC)':<19}  {'key':<16}  {'error code':<26}  "
        f"{'source':>10}  {'redrives':>8}  reason"
    )
    for row in shown:
        time = row["time"][:19] if row["time"] else "-"
        source = f"{row['source_partition']}@{row['source_offset']}"
        print(
            f"{row['offset']:>7}  {time:<19}  {_short(row['key'], 16):<16}  "
            f"{row['error_code']:<26}  {source:>10}  {row['redrive_count']:>8}  "
            f"{row['error_reason']}"
        )
    print(f"{len(shown)} dead letters on {desk.topic}")
    return 0


def redrive_command(args: argparse.Namespace) -> int:
    from lifecycle.entrypoints.dead_letters import DeadLetterDesk

    settings = settings_from(args)
    report = DeadLetterDesk(settings).redrive(
        code=args.code, offsets=args.offsets, again=args.again
    )
    touchpoints = Components(settings).topics().touchpoints
    if args.json:
        print(json.dumps({**report.as_dict(), "topic": touchpoints}))
        return 0
    print(
        f"re-drove {len(report.redriven)} dead letters to {touchpoints}; passed over "
        f"{report.already_redriven} re-driven before (--again re-drives them), "
        f"{report.repeats} repeats of a message, {report.without_value} without a value"
    )
    return 0


def _short(text: str | None, width: int) -> str:
    if text is None:
        return "-"
    return text if len(text) <= width else text[: width - 1] + "…"
