"""What every command shares: the store flags (``spec.STORE_OPTIONS``) turned into
settings, time arguments, progress bars on a terminal, and the errors that map to exit
codes."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pydantic import ValidationError

    from lifecycle.settings import Settings

T = TypeVar("T")


class UsageError(Exception):
    """Bad usage or input: exit status 2."""


class CheckFailed(Exception):
    """A check found a problem (e.g. tampering): exit status 1."""


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """Environment settings, overridden by the flags given; configures logging once."""
    from lifecycle.logs import configure_logging

    settings = settings_without_logging(args, **extra)
    configure_logging(settings.log_format, settings.log_level)
    return settings


def settings_without_logging(args: argparse.Namespace, **extra: Any) -> Settings:
    """The settings of a command that runs nothing that logs (a read that prints its
    answer): logging stays unconfigured, so the command never loads the logging library."""
    from lifecycle.settings import Settings

    overrides = {
        name: value
        for name in ("database_url", "policy_file", "log_format", "kafka_bootstrap")
        if (value := getattr(args, name, None)) is not None
    }
    overrides.update({k: v for k, v in extra.items() if v is not None})
    return Settings(**overrides)


def parse_time(text: str) -> datetime:
    """argparse type: an RFC 3339 time with offset."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time (e.g. 2025-01-31T12:00:00Z)"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (add Z or +HH:MM)")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def one_line(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


@contextlib.contextmanager
def progress(
    description: str, total: int | None, unit: str = ""
) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (stderr); nothing when output is piped. ``unit``:
    "bytes" shows a transfer speed; a noun ("events") shows its rate per second."""
    if not sys.stderr.isatty():
        yield lambda _advance: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.0f} {unit}/s")

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
    if unit == "bytes":
        columns.append(TransferSpeedColumn())
    else:
        columns.append(MofNCompleteColumn())
        if unit:
            columns.append(RateColumn())
    columns.append(TimeRemainingColumn())
    with Progress(*columns, transient=True, redirect_stderr=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda advance: bar.advance(task, advance)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT (instead of dying or KeyboardInterrupt): a
    service finishes what it holds and stops. The previous handlers come back after."""
    import signal

    import structlog

    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        structlog.get_logger(__name__).info("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def opened_when_reachable(
    settings: Settings, stop: threading.Event, opening: Callable[[contextlib.ExitStack], T]
) -> Iterator[T | None]:
    """What a service needs, opened by ``opening`` (which enters it on the stack given)
    once the store answers, and closed on leaving; None: stopped first.

    A supervisor may start a service while the database restarts, and the database may
    go away at any moment of the start, after it first answered too: an attempt that
    meets a database fault closes what it opened and the whole start is tried again,
    as a running service waits out an outage."""
    import structlog

    from lifecycle.faults import Stopped, is_database_fault, retry

    def attempt() -> tuple[contextlib.ExitStack, T]:
        with contextlib.ExitStack() as stack:
            settings.store.check_reachable()
            opened = opening(stack)
            return stack.pop_all(), opened

    try:
        stack, opened = retry(
            attempt,
            is_fault=is_database_fault,
            cause="database",
            stop=stop,
            log=structlog.get_logger(__name__),
        )
    except Stopped:
        yield None
        return
    with stack:
        yield opened
