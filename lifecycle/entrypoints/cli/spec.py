"""Commands declared as data: a ``Command`` names its handler, help and options, and
``add_to`` makes the argparse parser, so that each command module lists what it offers
instead of repeating the calls that register it. Options several commands take are
declared once here.

Like the rest of the parser, this imports nothing heavy: every run builds it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

Handler = Callable[[argparse.Namespace], int]


class Option:
    """One ``add_argument`` call, made on every parser that takes the option."""

    def __init__(self, *names: str, **settings: Any) -> None:
        self.names = names
        self.settings = settings

    def add_to(self, parser: argparse._ActionsContainer) -> None:
        parser.add_argument(*self.names, **self.settings)


class OneOf:
    """Options that exclude each other; ``required``: one of them must be given."""

    def __init__(self, *options: Option, required: bool = False) -> None:
        self.options = options
        self.required = required

    def add_to(self, parser: argparse._ActionsContainer) -> None:
        group = parser.add_mutually_exclusive_group(required=self.required)
        for option in self.options:
            option.add_to(group)


def json_option(help: str) -> Option:
    return Option("--json", action="store_true", help=help)


STORE_OPTIONS = (
    Option(
        "--database-url",
        metavar="URL",
        help="sqlite:///PATH or postgresql://… "
        "(env LIFECYCLE_DATABASE_URL; default ./lifecycle.db)",
    ),
    Option(
        "--policy-file", metavar="FILE", help="TOML lifecycle policy (env LIFECYCLE_POLICY_FILE)"
    ),
    Option(
        "--log-format",
        choices=["auto", "json", "console"],
        help="logs on stderr: JSON lines or readable (env LIFECYCLE_LOG_FORMAT)",
    ),
)
"""What every command over the store takes; ``settings_from`` reads them."""

CUSTOMER = Option("customer", metavar="CUSTOMER", help="the upstream customer_id")
REASON = Option("--reason", required=True, help="why, for the audit trail")
JSON_LINES_INPUT = Option(
    "file", metavar="FILE|-", help="a JSON-lines file, or - for standard input"
)


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    help: str
    description: str | None = None
    options: Sequence[Option | OneOf] = ()
    store_options: bool = True
    """Whether it takes ``STORE_OPTIONS`` (listed after its own)."""

    def add_to(self, subparsers: Subparsers) -> None:
        parser = subparsers.add_parser(self.name, help=self.help, description=self.description)
        for option in (*self.options, *(STORE_OPTIONS if self.store_options else ())):
            option.add_to(parser)
        parser.set_defaults(handler=self.handler)


@dataclass(frozen=True)
class Group:
    """A command whose actions are commands of their own (``lifecycle policy show``)."""

    name: str
    help: str
    actions: Sequence[Command]
    description: str | None = None

    def add_to(self, subparsers: Subparsers) -> None:
        parser = subparsers.add_parser(self.name, help=self.help, description=self.description)
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        for action in self.actions:
            action.add_to(actions)
