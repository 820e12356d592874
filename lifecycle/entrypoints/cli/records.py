"""Commands of the write side and of point-in-time reads: import, history, state,
stage, assign, sweep."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack, closing
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lifecycle.domain.vocabulary import Stage
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.entrypoints.cli.common import (
    UsageError,
    parse_time,
    positive_int,
    progress,
    settings_from,
    settings_without_logging,
)
from lifecycle.entrypoints.cli.spec import (
    CUSTOMER,
    JSON_LINES_INPUT,
    REASON,
    Command,
    OneOf,
    Option,
    json_option,
)

if TYPE_CHECKING:
    from lifecycle.domain.relationship import Relationship, StageInForce
    from lifecycle.service.application import LifecycleApplication
    from lifecycle.settings import Settings


def commands() -> Sequence[Command]:
    return (
        Command(
            "import",
            import_command,
            help="record JSON lines of Contract 1 touchpoints",
            description="Record touchpoints from JSON lines (Contract 1). Rejected lines go to a "
            "rejects file with line number, error code and reason. Exit 0 when the input was "
            "processed, even with rejects; 1 when a process sharing a large file failed (what "
            "was recorded stays: import again); 2 when it cannot be read.",
            options=(
                JSON_LINES_INPUT,
                Option(
                    "--rejects",
                    metavar="FILE",
                    help="where rejected lines go (default FILE.rejects.jsonl, or "
                    "import.rejects.jsonl for -)",
                ),
                Option("--batch-size", type=positive_int, help="touchpoints per transaction"),
                Option(
                    "--processes",
                    type=positive_int,
                    metavar="N",
                    help="processes a file of 8 MB or more is shared between, by customer "
                    "(default LIFECYCLE_IMPORT_PROCESSES: one per core)",
                ),
                json_option("print the counts as JSON"),
            ),
        ),
        Command(
            "history",
            history_command,
            help="every recorded event of one customer",
            description="Each event with its version, log position, business time (occurred), "
            "recorded time and hash; personal data decrypted, or shown as erased.",
            options=(
                CUSTOMER,
                json_option("JSON lines of Contract 3 events with positions and hashes"),
            ),
        ),
        Command(
            "state",
            state_command,
            help="a relationship's state now, at a version, or as recorded at a time; or the "
            "stage in force at a business time",
            description="The relationship's state as recorded now, after event N (--version), "
            "or as the engine knew it at a recorded time (--as-of). --at answers another "
            "question: which stage was in force at a business time (from the stage changes' "
            "effective times, whenever they were recorded: a backfill records years today).",
            options=(
                Option("customer", metavar="CUSTOMER"),
                OneOf(
                    Option(
                        "--as-of",
                        type=parse_time,
                        metavar="TIME",
                        help="recorded time (what the engine knew then)",
                    ),
                    Option(
                        "--version", type=positive_int, metavar="N", help="the state after event N"
                    ),
                    Option(
                        "--at",
                        type=parse_time,
                        metavar="TIME",
                        help="business time: the stage in force then (null before the "
                        "relationship began)",
                    ),
                ),
            ),
        ),
        Command(
            "stage",
            stage_command,
            help="move a relationship to a stage by hand",
            options=(
                Option("customer", metavar="CUSTOMER"),
                Option("--to", required=True, choices=[s.value for s in Stage], dest="to_stage"),
                REASON,
                Option("--actor", required=True, help="who decided"),
            ),
        ),
        Command(
            "assign",
            assign_command,
            help="put an account manager in charge of a relationship, or take them off",
            description="Records AccountManagerAssigned (or, with --none, "
            "AccountManagerUnassigned) on the customer's relationship: a relationship with an "
            "account manager is of the type dedicated_personal_assistance. Assigning the "
            "manager in charge again changes nothing.",
            options=(
                Option("customer", metavar="CUSTOMER"),
                OneOf(
                    Option("--manager", metavar="ID", help="the account manager's id"),
                    Option("--none", action="store_true", help="take the account manager off"),
                    required=True,
                ),
                Option("--actor", required=True, help="who decided"),
                REASON,
            ),
        ),
        Command(
            "sweep",
            sweep_command,
            help="dissolve open relationships with no touchpoint in the inactivity window",
            options=(
                Option(
                    "--now", type=parse_time, metavar="TIME", help="the sweep's time (default now)"
                ),
            ),
        ),
    )


def import_command(args: argparse.Namespace) -> int:
    from lifecycle.service.importer import WORKER_PAYS_FROM_BYTES, import_file, import_lines

    settings = settings_from(args)
    with ExitStack() as stack:
        source, size = _open_input(args.file, stack)
        rejects_path = Path(args.rejects or _default_rejects(args.file))
        try:
            rejects: IO[str] = stack.enter_context(rejects_path.open("w", encoding="utf-8"))
        except OSError as error:
            raise UsageError(
                f"cannot write rejects file {rejects_path}: {error.strerror}"
            ) from None
        app = Components(settings).application()
        stack.callback(app.close)
        app.follow_policy()
        advance = stack.enter_context(progress("importing", size, unit="bytes"))
        batch_size = args.batch_size or settings.import_batch_size
        large = size is not None and size >= WORKER_PAYS_FROM_BYTES
        processes = args.processes or settings.import_processes
        if large and processes > 1:
            report = import_file(
                app,
                Path(args.file),
                functools.partial(_worker_application, settings),
                processes=processes,
                rules=settings.message_rules,
                batch_size=batch_size,
                rejects=rejects,
                on_progress=advance,
            )
        else:
            report = import_lines(
                app,
                source,
                rules=settings.message_rules,
                batch_size=batch_size,
                rejects=rejects,
                on_progress=advance,
                parse_in_worker=large,
            )
    if report.rejected == 0:
        rejects_path.unlink(missing_ok=True)
    if args.json:
        print(
            json.dumps(
                {**report.as_dict(), "rejects_file": str(rejects_path) if report.rejected else None}
            )
        )
    else:
        print(
            f"recorded {report.recorded}, duplicates {report.duplicates}, "
            f"rejected {report.rejected}"
        )
        if report.rejected:
            codes = ", ".join(f"{code} {n}" for code, n in report.rejected_by_code.most_common())
            print(f"rejected lines ({codes}) are in {rejects_path}")
    return 0


def _worker_application(settings: Settings) -> LifecycleApplication:
    """The application of an import's spawned process, logging as this one does."""
    from lifecycle.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    return Components(settings).application()


def _open_input(name: str, stack: ExitStack) -> tuple[Any, int | None]:
    if name == "-":
        return sys.stdin.buffer, None
    try:
        handle = stack.enter_context(open(name, "rb"))  # noqa: SIM115 (closed by the stack)
        return handle, os.fstat(handle.fileno()).st_size
    except OSError as error:
        raise UsageError(f"cannot read {name}: {error.strerror}") from None


def _default_rejects(name: str) -> str:
    return "import.rejects.jsonl" if name == "-" else f"{name}.rejects.jsonl"


def history_command(args: argparse.Namespace) -> int:
    from lifecycle.audit.history import audited_history, describe_event

    with closing(Components(settings_without_logging(args)).application()) as app:
        events = audited_history(app, args.customer)
    if args.json:
        for event in events:
            print(event.model_dump_json())
        return 0
    for event in events:
        print(
            f"v{event.version:<4} #{event.position:<8} "
            f"occurred {event.occurred_at.isoformat(timespec='seconds')}  "
            f"recorded {event.recorded_at.isoformat(timespec='seconds')}  "
            f"{event.type:<19} {describe_event(event)}"
            f"{_personal(event.personal)}  hash {event.hash}"
        )
    return 0


def _personal(view: dict[str, Any] | None) -> str:
    if view is None:
        return ""
    if view.get("erased"):
        return " [personal data erased]"
    return " [personal: " + ", ".join(f"{k}={v}" for k, v in sorted(view.items())) + "]"


def state_command(args: argparse.Namespace) -> int:
    with closing(Components(settings_without_logging(args)).application()) as app:
        if args.at is not None:
            in_force = app.stage_at(args.customer, args.at)
            print(
                json.dumps(
                    {"customer_id": args.customer, "at": describe_stage_at(in_force)}, indent=2
                )
            )
            return 0
        if args.as_of is not None:
            relationship = app.relationship_as_of(args.customer, args.as_of)
        else:
            relationship = app.relationship(args.customer, version=args.version)
    print(json.dumps(describe_state(relationship), indent=2))
    return 0


def describe_state(relationship: Relationship) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "customer_id": relationship.customer_id,
        "relationship_id": str(relationship.id),
        "version": relationship.version,
        "recorded_at": iso(relationship.modified_on),
        "stage": relationship.stage.value,
        "stage_since": iso(relationship.stage_since),
        "cycle": relationship.cycle,
        "started_at": iso(relationship.started_at),
        "touchpoints": relationship.touchpoint_count,
        "first_touchpoint_at": iso(relationship.first_touchpoint_at),
        "last_touchpoint_at": iso(relationship.last_touchpoint_at),
        "open_complaints": sorted(relationship.open_complaints),
        "current_cycle": {
            "touchpoints_by_kind": dict(sorted(relationship.cycle_kind_counts.items())),
            "purchase_days": len(relationship.cycle_purchase_days),
            "latest_survey_score": relationship.cycle_latest_survey_score,
        },
    }


def describe_stage_at(in_force: StageInForce) -> dict[str, Any]:
    return {
        "time": in_force.time.isoformat(),
        "stage": in_force.stage.value if in_force.stage else None,
        "cycle": in_force.cycle,
        "since": in_force.since.isoformat() if in_force.since else None,
    }


def stage_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.clock import utc_now

    with closing(Components(settings_from(args)).application()) as app:
        app.follow_policy()
        relationship = app.change_stage(
            args.customer, Stage(args.to_stage), actor=args.actor, reason=args.reason, at=utc_now()
        )
    print(
        f"{args.customer}: {relationship.stage.value} "
        f"(cycle {relationship.cycle}, version {relationship.version})"
    )
    return 0


def assign_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.clock import utc_now

    with closing(Components(settings_from(args)).application()) as app:
        assignment = app.assign_account_manager(
            args.customer,
            None if args.none else args.manager,
            actor=args.actor,
            reason=args.reason,
            at=utc_now(),
        )
    relationship = assignment.relationship
    manager = relationship.account_manager or "no account manager"
    print(
        f"{args.customer}: {manager} ({'changed' if assignment.changed else 'unchanged'}, "
        f"version {relationship.version})"
    )
    return 0


def sweep_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.clock import utc_now

    with closing(Components(settings_from(args)).application()) as app:
        app.follow_policy()
        outcome = app.sweep(args.now or utc_now())
    print(f"examined {outcome.examined}, dissolved {outcome.dissolved}")
    return 0
