"""The ``lifecycle`` command (Contract 5).

Each command group lives in a module of this package whose ``commands()`` declares its
commands (``spec.Command``); this module builds the parser from them, configures logging
once, and maps errors to exit codes in one place: 0 success, 1 a failed check (or a
shard that failed, or a database that did not answer a command run once), 2 bad usage
or input.

The command modules import what a command needs inside its handler, not at the top:
every run builds the whole parser, and ``lifecycle --help`` or ``lifecycle state X``
should not pay for loading PostgreSQL, Kafka, the read side and the audit.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lifecycle.domain.errors import LifecycleError
from lifecycle.entrypoints.cli import (
    analytics,
    audit,
    dead_letters,
    kafka,
    policy,
    read,
    records,
    schemas,
    simulate,
)
from lifecycle.entrypoints.cli.common import CheckFailed, UsageError, one_line
from lifecycle.service.processes import ShardFailed

COMMAND_GROUPS = (records, schemas, simulate, kafka, dead_letters, read, audit, analytics, policy)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifecycle",
        description="Event-sourced customer relationship-lifecycle engine.",
        epilog="Settings come from LIFECYCLE_* environment variables; flags override them.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        for command in group.commands():
            command.add_to(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from pydantic import ValidationError

    try:
        code: int = args.handler(args)
    except (CheckFailed, ShardFailed) as failure:
        print(f"lifecycle: {failure}", file=sys.stderr)
        return 1
    except (UsageError, LifecycleError) as error:
        print(f"lifecycle: error: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:
        print(f"lifecycle: error: invalid setting: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lifecycle: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`lifecycle history X | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        from lifecycle.faults import is_database_fault

        if not is_database_fault(error):
            raise
        # A service waits an outage out; a command run once says so and ends.
        print(f"lifecycle: the database is unavailable: {error}", file=sys.stderr)
        return 1
    return code


def run() -> None:
    sys.exit(main())
