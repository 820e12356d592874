"""``lifecycle policy``: the lifecycle policy adopted in the log (Contract 6).

``show`` and ``history`` print what was adopted, ``diff`` says what a candidate would
change (a report: exit 0 whatever it finds), and ``adopt`` records a new version and
re-evaluates every relationship under it. Only ``adopt`` writes; the others never do,
not even the first adoption of a store without a policy (which they describe as what
the first recording process will adopt).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from contextlib import closing
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
)
from lifecycle.entrypoints.cli.spec import REASON, Command, Group, Option, json_option

if TYPE_CHECKING:
    from lifecycle.domain.policy import PolicyText
    from lifecycle.domain.policy_stream import Adoption
    from lifecycle.service.application import LifecycleApplication
    from projections.whatif import PolicyDiff


def commands() -> Sequence[Group]:
    return (
        Group(
            "policy",
            help="the lifecycle policy adopted in the log: show, history, diff, adopt",
            description="The policy every recording process decides with is the one adopted "
            "in the event log. A store without one adopts LIFECYCLE_POLICY_FILE (or the "
            "built-in version 1) when something is first recorded into it.",
            actions=(
                Command(
                    "show",
                    show_command,
                    help="print the adopted policy's TOML text",
                    description="Prints the text exactly as adopted, after a comment line "
                    "saying which version it is, when, by whom and why.",
                    options=(
                        Option(
                            "--version", type=positive_int, metavar="N", help="an earlier version"
                        ),
                    ),
                ),
                Command(
                    "history",
                    history_command,
                    help="every adoption, in order",
                    options=(json_option("one JSON object a line"),),
                ),
                Command(
                    "diff",
                    diff_command,
                    help="what a candidate policy would change (writes nothing)",
                    description="Replays every relationship's recorded touchpoints in memory "
                    "under the adopted policy and under FILE, manual stage changes as "
                    "recorded, and compares where they end: stage counts and the from-to "
                    "matrix. Inactivity is judged once at --now, or not at all. Exit 0 "
                    "whatever it finds.",
                    options=(
                        Option("file", metavar="FILE", help="the candidate policy (TOML)"),
                        Option(
                            "--now",
                            type=parse_time,
                            metavar="TIME",
                            help="judge inactivity at this time",
                        ),
                        json_option("print the report as JSON"),
                        Option(
                            "--customers-out",
                            metavar="FILE",
                            help="write one JSON line per customer whose stage differs",
                        ),
                        Option(
                            "--workers",
                            type=positive_int,
                            help="processes to share the customers between (default: as "
                            "`lifecycle replay`)",
                        ),
                    ),
                ),
                Command(
                    "adopt",
                    adopt_command,
                    help="adopt a policy and re-evaluate every relationship under it",
                    description="Records the adoption of FILE (its version must be newer than "
                    "the adopted one), then applies its rules to every open relationship until "
                    "none fires, recording each change with triggered_by policy-adoption. "
                    "Processes recording meanwhile follow the new version from their next "
                    "batch. Stopped anywhere, it resumes where it was when run again; run "
                    "again after it finished, it does nothing.",
                    options=(
                        Option("file", metavar="FILE", help="the policy to adopt (TOML)"),
                        Option("--actor", required=True, help="who adopts it"),
                        REASON,
                        Option(
                            "--batch-size",
                            type=positive_int,
                            default=500,
                            help="relationships re-evaluated per transaction (default 500)",
                        ),
                        json_option("print the outcome as JSON"),
                    ),
                ),
            ),
        ),
    )


def show_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.policy import PolicyText

    components = Components(settings_from(args))
    with closing(components.application()) as app:
        stream = app.policy_stream()
    if stream is None:
        if args.version is not None:
            raise UsageError("no policy has been adopted in this store yet")
        first = components.policy_file() or PolicyText.default()
        print(
            f"# not adopted yet: the first recording process adopts this policy "
            f"({first.origin}); sha256 {first.sha256}"
        )
        sys.stdout.write(first.text)
        return 0
    adoption = stream.adopted if args.version is None else stream.adoption(args.version)
    if adoption is None:
        adopted = ", ".join(str(a.version) for a in stream.adoptions)
        raise UsageError(f"version {args.version} was never adopted (adopted: {adopted})")
    print(
        f"# version {adoption.version}, adopted {_time(adoption.adopted_at)} by "
        f"{adoption.actor}: {adoption.reason}; sha256 {adoption.sha256}"
    )
    sys.stdout.write(adoption.text)
    return 0


def history_command(args: argparse.Namespace) -> int:
    with closing(Components(settings_from(args)).application()) as app:
        adoptions = app.policy_adoptions()
    if not adoptions and not args.json:
        print("no policy adopted yet: the first recording process adopts one")
    for adoption, position in adoptions:
        if args.json:
            print(json.dumps(_adoption_json(adoption, position)))
        else:
            print(
                f"version {adoption.version:<4} adopted {_time(adoption.adopted_at)}  "
                f"position {position:<8} sha256 {adoption.sha256[:12]}  "
                f"by {adoption.actor}: {adoption.reason}"
            )
    return 0


def _adoption_json(adoption: Adoption, position: int) -> dict[str, Any]:
    return {
        "version": adoption.version,
        "adopted_at": adoption.adopted_at.isoformat(),
        "actor": adoption.actor,
        "reason": adoption.reason,
        "sha256": adoption.sha256,
        "position": position,
    }


def diff_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.policy import PolicyText
    from projections.whatif import diff_policies

    settings = settings_from(args)
    components = Components(settings)
    candidate = PolicyText.read(Path(args.file))
    customers_out = _open_for_writing(args.customers_out)
    with closing(components.application()) as app:
        adopted = adopted_or_first(app, components)
        head = app.recorder.max_notification_id() or 0
    try:
        with progress("replaying", head, unit="events") as advance:
            found = diff_policies(
                components,
                adopted,
                candidate,
                inactive_at=args.now,
                advance=advance,
                workers=args.workers,
            )
        comparison = found.comparison
        if customers_out is not None:
            for customer_id, now, under_candidate in comparison.differing:
                line = {
                    "customer_id": customer_id,
                    "stage_now": now,
                    "stage_candidate": under_candidate,
                }
                customers_out.write(json.dumps(line) + "\n")
    finally:
        if customers_out is not None:
            customers_out.close()
    if args.json:
        print(json.dumps(diff_report(adopted, candidate, found, args.file, args.now)))
    else:
        print_diff(adopted, candidate, found, args.file, args.now, args.customers_out)
    return 0


def diff_report(
    adopted: PolicyText,
    candidate: PolicyText,
    found: PolicyDiff,
    candidate_file: str,
    inactive_at: datetime | None,
) -> dict[str, Any]:
    """``policy diff --json``."""
    comparison = found.comparison
    return {
        "adopted": {"version": adopted.version, "sha256": adopted.sha256},
        "candidate": {
            "version": candidate.version,
            "sha256": candidate.sha256,
            "file": candidate_file,
        },
        "inactivity_judged_at": inactive_at.isoformat() if inactive_at else None,
        "relationships": comparison.relationships,
        "differing": len(comparison.differing),
        "stages": {
            stage: {"now": now, "candidate": under_candidate}
            for stage, (now, under_candidate) in comparison.stage_counts().items()
        },
        "matrix": [
            {"from": now, "to": under_candidate, "relationships": relationships}
            for (now, under_candidate), relationships in sorted(comparison.matrix.items())
        ],
        "events": found.events,
        "seconds": round(found.seconds, 3),
    }


def print_diff(
    adopted: PolicyText,
    candidate: PolicyText,
    found: PolicyDiff,
    candidate_file: str,
    inactive_at: datetime | None,
    customers_out: str | None = None,
) -> None:
    """``policy diff`` for people: stage counts now and under the candidate, and the
    matrix of where relationships would go."""
    comparison = found.comparison
    judged = (
        f"inactivity judged at {_time(inactive_at)}"
        if inactive_at
        else "inactivity not judged (no --now)"
    )
    print(
        f"policy diff: adopted version {adopted.version} against candidate version "
        f"{candidate.version} ({candidate_file})\n"
        f"replayed {comparison.relationships} relationships ({found.events} events) in "
        f"{found.seconds:.1f} s; {judged}\n"
    )
    print(f"{'stage':<12} {'now':>9} {'candidate':>10} {'change':>8}")
    for stage, (before, after) in comparison.stage_counts().items():
        print(f"{stage:<12} {before:>9} {after:>10} {after - before:>+8}")
    stages = [stage.value for stage in Stage]
    print("\nfrom now (rows) to candidate (columns):")
    print(" " * 12 + "".join(f"{stage[:11]:>12}" for stage in stages))
    for row in stages:
        cells = "".join(f"{comparison.matrix.get((row, column), 0):>12}" for column in stages)
        print(f"{row:<12}{cells}")
    listed = f", listed in {customers_out}" if customers_out else ""
    print(f"\n{len(comparison.differing)} relationships would be in another stage{listed}")


def adopted_or_first(app: LifecycleApplication, components: Components) -> PolicyText:
    """The adopted policy, or before any adoption the one the first recording process
    will adopt."""
    from lifecycle.domain.policy import PolicyText

    stream = app.policy_stream()
    if stream is not None:
        return stream.adopted.document()
    return components.policy_file() or PolicyText.default()


def adopt_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.clock import utc_now
    from lifecycle.domain.policy import PolicyText

    settings = settings_from(args)
    document = PolicyText.read(Path(args.file))
    with (
        closing(Components(settings).application()) as app,
        progress("re-evaluating relationships", None) as advance,
    ):
        outcome = app.adopt_policy(
            document,
            actor=args.actor,
            reason=args.reason,
            at=utc_now(),
            batch_size=args.batch_size,
            advance=advance,
        )
    if args.json:
        print(
            json.dumps(
                {
                    "version": outcome.version,
                    "recorded": outcome.recorded,
                    "adopted_at": outcome.adopted_at.isoformat(),
                    "reevaluated": outcome.reevaluated,
                    "moved": outcome.moved,
                    "resumed_after": outcome.resumed_after,
                    "superseded_by": outcome.superseded_by,
                }
            )
        )
        return 0
    if outcome.recorded:
        print(f"adopted policy version {outcome.version} at {_time(outcome.adopted_at)}")
    else:
        print(
            f"policy version {outcome.version} was adopted already "
            f"(at {_time(outcome.adopted_at)}): nothing recorded"
        )
    resumed = (
        f", resuming after position {outcome.resumed_after}"
        if outcome.resumed_after is not None
        else ""
    )
    print(
        f"re-evaluated {outcome.reevaluated} relationships{resumed}: "
        f"{outcome.moved} moved to another stage"
    )
    if outcome.superseded_by is not None:
        print(
            f"stopped: version {outcome.superseded_by} was adopted meanwhile, and its "
            "adoption re-evaluates every relationship"
        )
    return 0


def _open_for_writing(name: str | None) -> IO[str] | None:
    if name is None:
        return None
    try:
        return open(name, "w", encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write {name}: {error.strerror}") from None


def _time(value: datetime) -> str:
    return value.isoformat(timespec="seconds")
