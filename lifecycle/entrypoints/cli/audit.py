"""Commands for auditors and administrators: ``audit seal``, ``audit verify``,
``export`` and ``forget``.

``audit verify`` exits 1 naming the first event that does not hold; the key that signs
the ledger comes from ``LIFECYCLE_AUDIT_HMAC_KEY`` and is never stored.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from contextlib import ExitStack, closing
from pathlib import Path
from typing import TYPE_CHECKING

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.entrypoints.cli.common import (
    CheckFailed,
    UsageError,
    one_line,
    parse_time,
    progress,
    settings_from,
)
from lifecycle.entrypoints.cli.spec import (
    CUSTOMER,
    REASON,
    Command,
    Group,
    OneOf,
    Option,
    json_option,
)

if TYPE_CHECKING:
    from lifecycle.audit.ledger import AuditKey, AuditLedger, Checkpoint
    from lifecycle.service.application import LifecycleApplication
    from lifecycle.settings import Settings


def commands() -> Sequence[Command | Group]:
    return (
        Group(
            "audit",
            help="seal and verify the tamper-evident event log",
            description="The event log is hash-chained per relationship; sealing signs "
            "checkpoints of the whole log with LIFECYCLE_AUDIT_HMAC_KEY (kept outside the "
            "database).",
            actions=(
                Command(
                    "seal",
                    seal_command,
                    help="seal the events recorded since the last seal; print the checkpoint "
                    "as JSON",
                ),
                Command(
                    "drift",
                    drift_command,
                    help="rebuild every read model into scratch tables and compare with the "
                    "live ones",
                    description="Exit 0 when every live read model equals a rebuild from the "
                    "event log at the same position; exit 1 listing the differing rows by key. "
                    "Do not run it while a `lifecycle replay` is in progress: both use the "
                    "scratch generation.",
                    options=(
                        Option(
                            "--projection",
                            action="append",
                            metavar="NAME",
                            help="only these read models",
                        ),
                    ),
                ),
                Command(
                    "verify",
                    verify_command,
                    help="recompute every hash chain and check every signature",
                    description="Exit 0 with counts when the log, the sealed ledger and every "
                    "checkpoint hold; exit 1 naming the first event that does not (customer, "
                    "version, position, what differs).",
                    options=(
                        OneOf(
                            Option(
                                "--customer",
                                metavar="ID",
                                help="verify one customer's relationship",
                            ),
                            Option(
                                "--export",
                                metavar="DIR",
                                type=Path,
                                help="verify an export offline (no database)",
                            ),
                        ),
                        Option(
                            "--checkpoints",
                            metavar="FILE",
                            type=Path,
                            help="checkpoints kept outside the database (JSON lines, as `audit "
                            "seal` prints them): the log must reach each one's head even if the "
                            "ledger was removed",
                        ),
                        json_option("print the counts as JSON"),
                    ),
                ),
            ),
        ),
        Command(
            "export",
            export_command,
            help="write events as JSON lines (Contract 3, with hashes) plus a signed manifest",
            description="Writes DIR/events.jsonl and DIR/manifest.json; check them anywhere "
            "with `lifecycle audit verify --export DIR`. Times filter on recorded time.",
            options=(
                Option("--customer", metavar="ID", help="only this customer's events"),
                Option(
                    "--since", type=parse_time, metavar="TIME", help="recorded at or after TIME"
                ),
                Option(
                    "--until", type=parse_time, metavar="TIME", help="recorded at or before TIME"
                ),
                Option(
                    "--out",
                    type=Path,
                    default=Path("lifecycle-export"),
                    metavar="DIR",
                    help="default ./lifecycle-export",
                ),
                Option(
                    "--include-personal",
                    action="store_true",
                    help="decrypt personal data into the export (it then escapes later erasure)",
                ),
            ),
        ),
        Command(
            "forget",
            forget_command,
            help="erase a customer's personal data (admin): destroy their key, record the erasure",
            description="Destroys the customer's personal-data key and records "
            "PersonalDataErased. Every other fact stays and the audit chain still verifies. "
            "Keep personal data out of the reason: it is recorded for good.",
            options=(CUSTOMER, REASON, Option("--actor", help="who asked for it")),
        ),
    )


def _open(settings: Settings, stack: ExitStack) -> tuple[LifecycleApplication, AuditLedger]:
    app = Components(settings).application()
    stack.callback(app.close)
    ledger = Components(settings).ledger()
    stack.callback(ledger.close)
    return app, ledger


def _open_signing(
    args: argparse.Namespace, stack: ExitStack
) -> tuple[LifecycleApplication, AuditLedger, AuditKey]:
    """The log, the ledger and the key, for the commands that sign (a missing key is an
    error before anything is opened)."""
    settings = settings_from(args)
    key = Components(settings).audit_key()
    assert key is not None
    app, ledger = _open(settings, stack)
    return app, ledger, key


def seal_command(args: argparse.Namespace) -> int:
    from lifecycle.audit.sealing import seal

    with ExitStack() as stack:
        app, ledger, key = _open_signing(args, stack)
        outcome = seal(app, ledger, key)
    if outcome.checkpoint is None:
        print("lifecycle: nothing to seal: the log is empty", file=sys.stderr)
        return 0
    if not outcome.sealed:
        print(
            f"lifecycle: nothing new since checkpoint #{outcome.checkpoint.sequence}",
            file=sys.stderr,
        )
    print(outcome.checkpoint.model_dump_json())
    return 0


def verify_command(args: argparse.Namespace) -> int:
    from lifecycle.audit.export import verify_export
    from lifecycle.audit.verify import TamperingDetected

    settings = settings_from(args)
    try:
        if args.export is not None:
            report = verify_export(
                args.export, Components(settings).audit_key(required=False)
            ).as_dict()
        else:
            report = _verify_store(args, settings)
    except TamperingDetected as tampering:
        raise CheckFailed(f"audit verify failed: {tampering}") from None
    if args.json:
        print(json.dumps(report))
    else:
        print("verified: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.items()))
    return 0


MAX_DIFFERENCES_SHOWN = 20


def drift_command(args: argparse.Namespace) -> int:
    from projections.drift import find_drift

    report = find_drift(Components(settings_from(args)), args.projection)
    positions = ", ".join(f"{name} @{position or 0}" for name, position in report.positions.items())
    if report.differences:
        for difference in report.differences[:MAX_DIFFERENCES_SHOWN]:
            print(difference.describe())
        more = len(report.differences) - MAX_DIFFERENCES_SHOWN
        if more > 0:
            print(f"... and {more} more")
        raise CheckFailed(
            f"audit drift: {len(report.differences)} rows differ from a rebuild ({positions})"
        )
    print(f"no drift: {report.rows_compared} rows equal a rebuild ({positions})")
    return 0


def _verify_store(args: argparse.Namespace, settings: Settings) -> dict[str, object]:
    from lifecycle.audit.verify import verify_customer, verify_store

    key = Components(settings).audit_key(required=False)
    with ExitStack() as stack:
        app, ledger = _open(settings, stack)
        if args.customer is not None:
            return dict(verify_customer(app, ledger, key, args.customer).as_dict())
        anchors = _read_checkpoints(args.checkpoints) if args.checkpoints else []
        total = app.recorder.max_notification_id() or 0
        advance = stack.enter_context(progress("verifying", total))
        report = verify_store(app, ledger, key, anchors=anchors, on_progress=advance)
        return {**report.as_dict(), "outside_checkpoints": len(anchors)}


def _read_checkpoints(path: Path) -> list[Checkpoint]:
    from pydantic import ValidationError

    from lifecycle.audit.ledger import Checkpoint

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    try:
        return [Checkpoint.model_validate_json(line) for line in text.splitlines() if line.strip()]
    except ValidationError as error:
        problem = f"{path} holds something other than checkpoints: {one_line(error)}"
        raise UsageError(problem) from None


def export_command(args: argparse.Namespace) -> int:
    from lifecycle.audit.export import export_events
    from lifecycle.audit.verify import TamperingDetected

    with ExitStack() as stack:
        app, ledger, key = _open_signing(args, stack)
        total = None if args.customer else app.recorder.max_notification_id()
        advance = stack.enter_context(progress("exporting", total))
        try:
            manifest = export_events(
                app,
                ledger,
                key,
                args.out,
                customer_id=args.customer,
                since=args.since,
                until=args.until,
                include_personal=args.include_personal,
                on_progress=advance,
            )
        except TamperingDetected as tampering:
            raise CheckFailed(f"export refused: {tampering}") from None
    print(manifest.model_dump_json())
    return 0


def forget_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.clock import utc_now

    settings = settings_from(args)
    with closing(Components(settings).application()) as app:
        relationship, erased_now = app.forget(
            args.customer, reason=args.reason, actor=args.actor, at=utc_now()
        )
    if erased_now:
        print(f"{args.customer}: personal data erased (version {relationship.version})")
    else:
        print(f"{args.customer}: personal data had been erased before; its key is gone")
    return 0
