"""``lifecycle schemas``: the JSON Schemas of the contract messages, generated from
the pydantic models that validate them."""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lifecycle.entrypoints.cli.common import CheckFailed
from lifecycle.entrypoints.cli.spec import Command, Group, Handler, Option


def schemas() -> dict[str, Callable[[], dict[str, Any]]]:
    """Each schema file's name, and the function that generates it from its model: one
    schema per version of each contract message, every version the engine speaks."""
    from lifecycle.domain.messages import MESSAGE_VERSIONS, touchpoint_json_schema
    from lifecycle.domain.outbound import OUTBOUND_VERSIONS, relationship_event_json_schema

    return {
        **{
            f"touchpoint.v{number}.schema.json": functools.partial(touchpoint_json_schema, number)
            for number in MESSAGE_VERSIONS
        },
        **{
            f"relationship-event.v{number}.schema.json": functools.partial(
                relationship_event_json_schema, number
            )
            for number in OUTBOUND_VERSIONS
        },
    }


def commands() -> Sequence[Group]:
    return (
        Group(
            "schemas",
            help="JSON Schemas of the contract messages",
            actions=(
                _on_directory(
                    "export", export_command, "write every schema file into a directory", "--out"
                ),
                _on_directory(
                    "check",
                    check_command,
                    "exit 1 if the files in DIR differ from the models",
                    "--dir",
                ),
            ),
        ),
    )


def _on_directory(name: str, handler: Handler, help: str, flag: str) -> Command:
    """An action on a directory of schema files (default ./schemas); it needs no store."""
    directory = Option(flag, default="schemas", metavar="DIR", help="default ./schemas")
    return Command(name, handler, help=help, options=(directory,), store_options=False)


def render(build: Callable[[], dict[str, Any]]) -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def export_command(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, build in schemas().items():
        (out / name).write_text(render(build), encoding="utf-8")
        print(out / name)
    return 0


def check_command(args: argparse.Namespace) -> int:
    stale = [
        name
        for name, build in schemas().items()
        if not (Path(args.dir) / name).is_file()
        or (Path(args.dir) / name).read_text(encoding="utf-8") != render(build)
    ]
    if stale:
        raise CheckFailed(
            f"schemas out of date: {', '.join(stale)} (run: lifecycle schemas export)"
        )
    print("schemas up to date")
    return 0
