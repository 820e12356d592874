"""The read side's commands: ``project`` (runners that catch up and follow the log),
``replay`` (rebuild read models from position zero and swap them in), ``serve`` (the
read API) and ``report`` (an HTML page for people)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.entrypoints.cli.common import (
    opened_when_reachable,
    positive_int,
    progress,
    settings_from,
    stop_on_signals,
)
from lifecycle.entrypoints.cli.spec import Command, Option
from projections.names import READ_MODEL_NAMES

if TYPE_CHECKING:
    from lifecycle.settings import Settings
    from projections.runner import Runner


def commands() -> Sequence[Command]:
    names = ", ".join(READ_MODEL_NAMES)
    projection = Option(
        "--projection",
        action="append",
        metavar="NAME",
        help=f"one of {names}; repeat for several (default: all)",
    )
    return (
        Command(
            "project",
            project_command,
            help="project the event log into the read models and keep following it",
            description="Runs the read models' projection runners: they resume from their "
            "tracked positions, catch up with the event log, then follow it, logging their "
            f"lag. Read models: {names}.",
            options=(
                projection,
                Option("--once", action="store_true", help="catch up, print positions and exit"),
                Option(
                    "--batch-size",
                    type=positive_int,
                    help="events per transaction at most (default 100000)",
                ),
            ),
        ),
        Command(
            "replay",
            replay_command,
            help="rebuild read models from position zero and swap them in",
            description="Rebuilds the named read models (default all) into fresh tables while "
            "the current ones keep serving, then swaps each in atomically; the customers are "
            "split into shards, one per worker process. A runner still following the log "
            "resumes from the rebuilt position.",
            options=(
                projection,
                Option(
                    "--workers",
                    type=positive_int,
                    help="processes to share the rebuild between, one shard of the customers "
                    "each (default: one per core, fewer for a short log; env "
                    "LIFECYCLE_PROJECTION_REBUILD_WORKERS)",
                ),
            ),
        ),
        Command(
            "serve",
            serve_command,
            help="serve the read API over HTTP",
            description="Serves the read API (OpenAPI at /openapi.json, docs at /docs). Keys "
            'and roles come from LIFECYCLE_API_KEYS (JSON {"key": "reader"} or key:role,…).',
            options=(
                Option("--host", help="default 127.0.0.1 (env LIFECYCLE_API_HOST)"),
                Option("--port", type=int, help="default 8000 (env LIFECYCLE_API_PORT)"),
                Option(
                    "--workers",
                    type=positive_int,
                    help="worker processes (env LIFECYCLE_API_WORKERS; default one per CPU, at "
                    "most 4); with several, the projection runners follow the log in a process "
                    "of their own",
                ),
                Option(
                    "--no-project",
                    action="store_true",
                    help="only serve; by default the projection runners follow the log in this "
                    "process",
                ),
            ),
        ),
        Command(
            "report",
            report_command,
            help="write an HTML report: funnel, stage flow, cohort retention",
            description="Writes a self-contained HTML page (nothing is fetched when viewing it) "
            "from the read models, after bringing them up to date.",
            options=(
                Option("--out", required=True, metavar="FILE.html", help="where to write it"),
            ),
        ),
    )


def project_command(args: argparse.Namespace) -> int:
    from projections.wiring import build_runner, close_runner

    settings = settings_from(args)

    def open_runner(stack: contextlib.ExitStack) -> Runner:
        app = stack.enter_context(contextlib.closing(Components(settings).application()))
        runner = build_runner(
            Components(settings), app, args.projection, batch_size=args.batch_size
        )
        stack.callback(close_runner, runner)
        return runner

    if args.once:
        with contextlib.ExitStack() as stack:
            runner = open_runner(stack)
            runner.catch_up()
            _print_lanes(runner)
        return 0
    with (
        stop_on_signals() as stop,
        opened_when_reachable(settings, stop, open_runner) as following,
    ):
        if following is not None:
            following.follow(stop, poll_seconds=settings.projection_poll_seconds)
            _print_lanes(following)
    return 0


def _print_lanes(runner: Runner) -> None:
    for lane in runner.status():
        print(f"{lane.name:<12} position {lane.position:>10}  lag {lane.lag:>8}")


def replay_command(args: argparse.Namespace) -> int:
    from projections.rebuild import rebuild

    settings = settings_from(args)
    with progress("rebuilding", _head(settings), unit="events") as advance:
        outcome = rebuild(
            Components(settings), args.projection, advance=advance, workers=args.workers
        )
    print(
        f"rebuilt {', '.join(outcome.positions)} from {outcome.events} events in "
        f"{outcome.seconds:.1f} s ({outcome.events_per_second:,.0f} events/s); "
        "swapped in at position "
        + ", ".join(f"{name} {pos or 0}" for name, pos in outcome.positions.items())
    )
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from lifecycle.entrypoints.serve import serve_api

    settings = settings_from(args, api_host=args.host, api_port=args.port, api_workers=args.workers)
    if not settings.api_keys:
        print(
            "lifecycle: warning: LIFECYCLE_API_KEYS is empty: every /v1 request will get 401",
            file=sys.stderr,
        )
    serve_api(settings, with_projections=not args.no_project)
    return 0


def report_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.clock import utc_now
    from projections.report import write_report
    from projections.service import catch_up

    settings = settings_from(args)
    catch_up(Components(settings), ["funnel", "summary"])
    out = Path(args.out)
    data = write_report(Components(settings), out, utc_now())
    print(f"wrote {out} ({data.funnel.relationships} relationships, position {data.position})")
    return 0


def _head(settings: Settings) -> int:

    with contextlib.closing(Components(settings).application()) as app:
        return app.recorder.max_notification_id() or 0
