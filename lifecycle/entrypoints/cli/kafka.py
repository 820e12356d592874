"""Commands of the Kafka edge: broker, consume, relay, publish, run.

Services (``broker``, ``consume``, ``relay``, ``run``) run until SIGTERM or SIGINT,
finish what they hold, and exit 0; a service that fails exits 1.
``LIFECYCLE_KAFKA_BOOTSTRAP`` names the Kafka cluster; unset, ``consume``, ``relay``
and ``publish`` use the embedded broker's address (127.0.0.1 and
``LIFECYCLE_KAFKA_BROKER_PORT``) and ``run`` starts the embedded broker itself.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from pathlib import Path
from typing import IO, TYPE_CHECKING

from lifecycle.domain.errors import LifecycleError, RejectedTouchpoint
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.entrypoints.cli.common import (
    UsageError,
    opened_when_reachable,
    positive_int,
    settings_from,
    stop_on_signals,
)
from lifecycle.entrypoints.cli.spec import JSON_LINES_INPUT, Command, Option, json_option

if TYPE_CHECKING:
    from lifecycle.settings import Settings

Service = tuple[str, Callable[[threading.Event], None]]


BOOTSTRAP = Option(
    "--bootstrap",
    dest="kafka_bootstrap",
    metavar="HOST:PORT",
    help="Kafka cluster (env LIFECYCLE_KAFKA_BOOTSTRAP; default: the embedded broker's port)",
)
EMBEDDED_BROKER = (
    Option(
        "--port",
        type=int,
        help="embedded broker port on 127.0.0.1 (env LIFECYCLE_KAFKA_BROKER_PORT; default 9092)",
    ),
    Option(
        "--partitions",
        type=positive_int,
        help="partitions of the touchpoint topic (env LIFECYCLE_KAFKA_TOUCHPOINT_PARTITIONS; "
        "default 6)",
    ),
)


def commands() -> Sequence[Command]:
    return (
        Command(
            "broker",
            broker_command,
            help="run the embedded Kafka-compatible broker until stopped",
            description="Runs the embedded broker (Tansu, memory storage: nothing survives a "
            "restart) on 127.0.0.1 and creates the project's topics. For development and "
            "single machines; production points LIFECYCLE_KAFKA_BOOTSTRAP at its Kafka cluster.",
            options=EMBEDDED_BROKER,
        ),
        Command(
            "consume",
            consume_command,
            help="record touchpoints from Kafka, exactly once, until stopped",
            description="A consumer-group member for the touchpoint topic: records valid "
            "touchpoints with their Kafka positions in one transaction, dead-letters invalid "
            "ones. Run several in one group to share the partitions.",
            options=(
                BOOTSTRAP,
                Option("--group", help="consumer group (env LIFECYCLE_KAFKA_CONSUMER_GROUP)"),
                Option(
                    "--max-records",
                    type=positive_int,
                    help="messages per poll (env LIFECYCLE_KAFKA_MAX_POLL_RECORDS)",
                ),
            ),
        ),
        Command(
            "relay",
            relay_command,
            help="publish the event log to the relationship-events topic until stopped",
            description="Publishes every recorded event as a Contract 3 message, at least once "
            "and in log order per customer, resuming from its stored position.",
            options=(BOOTSTRAP,),
        ),
        Command(
            "publish",
            publish_command,
            help="send JSON lines of Contract 1 touchpoints to the touchpoint topic",
            description="Validates each line and sends the valid ones, keyed by customer_id. "
            "Invalid lines are reported on standard error with their line number and not sent. "
            "Exit 0 when the input was processed, even with invalid lines.",
            options=(JSON_LINES_INPUT, BOOTSTRAP, json_option("print the counts as JSON")),
        ),
        Command(
            "run",
            run_command,
            help="broker, consumer and relay in one process (single-machine deployment)",
            description="Starts the embedded broker unless LIFECYCLE_KAFKA_BOOTSTRAP is set, "
            "then the touchpoint consumer and the outbound relay, until stopped.",
            options=(BOOTSTRAP, *EMBEDDED_BROKER),
        ),
    )


def _settings(args: argparse.Namespace) -> Settings:
    return settings_from(
        args,
        kafka_broker_port=getattr(args, "port", None),
        kafka_touchpoint_partitions=getattr(args, "partitions", None),
        kafka_consumer_group=getattr(args, "group", None),
        kafka_max_poll_records=getattr(args, "max_records", None),
    )


# Commands ------------------------------------------------------------------------------


def broker_command(args: argparse.Namespace) -> int:
    from consumers.broker import EmbeddedBroker

    settings = _settings(args)
    topics = Components(settings).topics()
    with stop_on_signals() as stop, EmbeddedBroker(settings.kafka_broker_port, topics) as broker:
        print(
            f"broker listening on {broker.bootstrap}; topics {topics.touchpoints} "
            f"({topics.touchpoint_partitions} partitions), {topics.dead_letters}, "
            f"{topics.relationship_events}; memory storage; stop with Ctrl-C",
            flush=True,
        )
        while not stop.wait(0.5):
            if not broker.running:
                print("lifecycle: error: the embedded broker exited", file=sys.stderr)
                return 1
    return 0


def consume_command(args: argparse.Namespace) -> int:
    settings = _settings(args)

    def open_consumer(stack: ExitStack) -> Service:
        app = stack.enter_context(closing(Components(settings).application()))
        app.follow_policy()
        return ("consume", Components(settings).ingest(app).run)

    with (
        stop_on_signals() as stop,
        opened_when_reachable(settings, stop, open_consumer) as consumer,
    ):
        return 0 if consumer is None else run_services([consumer], stop)


def relay_command(args: argparse.Namespace) -> int:
    settings = _settings(args)

    def open_relay(stack: ExitStack) -> Service:
        app = stack.enter_context(closing(Components(settings).application()))
        tracking = Components(settings).relay_tracking()
        stack.callback(tracking.close)
        return ("relay", Components(settings).relay(app, tracking.tracking_recorder()).run)

    with (
        stop_on_signals() as stop,
        opened_when_reachable(settings, stop, open_relay) as relay,
    ):
        return 0 if relay is None else run_services([relay], stop)


def run_command(args: argparse.Namespace) -> int:
    import structlog

    from consumers.broker import EmbeddedBroker

    settings = _settings(args)
    with stop_on_signals() as stop, ExitStack() as stack:
        broker: EmbeddedBroker | None = None
        if settings.kafka_bootstrap is None:
            broker = stack.enter_context(
                EmbeddedBroker(settings.kafka_broker_port, Components(settings).topics())
            )
        bootstrap = settings.bootstrap_servers

        def open_engine(engine: ExitStack) -> list[Service]:
            ingest_app = engine.enter_context(closing(Components(settings).application()))
            ingest_app.follow_policy()
            relay_app = engine.enter_context(closing(Components(settings).application()))
            tracking = Components(settings).relay_tracking()
            engine.callback(tracking.close)
            relay = Components(settings).relay(
                relay_app, tracking.tracking_recorder(), bootstrap=bootstrap
            )
            return [
                ("consume", Components(settings).ingest(ingest_app, bootstrap=bootstrap).run),
                ("relay", relay.run),
                *read_side_services(settings),
                *audit_services(settings, engine),
            ]

        services = stack.enter_context(opened_when_reachable(settings, stop, open_engine))
        if services is None:
            return 0
        structlog.get_logger(__name__).info(
            "engine_started",
            bootstrap=bootstrap,
            embedded_broker=broker is not None,
            services=[name for name, _ in services],
        )
        alive = (lambda: broker.running) if broker is not None else None
        return run_services(services, stop, alive=alive)
    return 0  # not reached: the stack swallows no exception


def read_side_services(settings: Settings) -> list[Service]:
    """The projection runners following the log, and the read API."""
    from lifecycle.entrypoints.serve import serve_api_until
    from projections.service import start_projections
    from projections.wiring import close_view, open_views

    # Create every view's tables now: the runner and the API open the same files from two
    # threads, and the library's first-time table set-up is not safe to race.
    for view in open_views(Components(settings)).values():
        close_view(view)

    def project(stop: threading.Event) -> None:
        running = start_projections(Components(settings))
        try:
            stop.wait()
        finally:
            running.stop()

    return [("project", project), ("api", lambda stop: serve_api_until(settings, stop))]


def audit_services(settings: Settings, stack: ExitStack) -> list[Service]:
    """Sealing the audit ledger every LIFECYCLE_AUDIT_SEAL_INTERVAL_SECONDS, when a key is set."""
    import structlog

    if Components(settings).audit_key(required=False) is None:
        structlog.get_logger(__name__).warning(
            "audit_sealing_off", reason="LIFECYCLE_AUDIT_HMAC_KEY is not set"
        )
        return []
    app = Components(settings).application()
    stack.callback(app.close)
    sealer = Components(settings).sealer(app)
    stack.callback(sealer.close)

    def seal(stop: threading.Event) -> None:
        while not stop.is_set():
            sealer.seal_once()
            stop.wait(settings.audit_seal_interval_seconds)

    return [("seal", seal)]


def publish_command(args: argparse.Namespace) -> int:
    from consumers.broker import BrokerError
    from consumers.clients import new_producer
    from consumers.faults import is_broker_fault
    from consumers.publish import publish_lines

    settings = settings_from(args)
    topics = Components(settings).topics()
    with ExitStack() as stack:
        source = _open_input(args.file, stack)
        try:
            producer = new_producer(settings.bootstrap_servers, "lifecycle-publish")
        except Exception as error:
            if is_broker_fault(error):
                raise BrokerError(
                    f"cannot reach Kafka at {settings.bootstrap_servers}: {error}"
                ) from None
            raise
        stack.callback(producer.close)
        report = publish_lines(
            producer,
            topics.touchpoints,
            source,
            rules=settings.message_rules,
            on_invalid=_report_invalid,
        )
    if args.json:
        import json

        print(json.dumps({**report.as_dict(), "topic": topics.touchpoints}))
    else:
        print(f"sent {report.sent} to {topics.touchpoints}, invalid {report.invalid}")
    return 0


def _report_invalid(number: int, rejection: RejectedTouchpoint, _line: bytes) -> None:
    print(f"line {number}: {rejection.code}: {rejection.reason}", file=sys.stderr)


def _open_input(name: str, stack: ExitStack) -> IO[bytes]:
    if name == "-":
        return sys.stdin.buffer
    try:
        return stack.enter_context(Path(name).open("rb"))
    except OSError as error:
        raise UsageError(f"cannot read {name}: {error.strerror}") from None


# Running services ----------------------------------------------------------------------


def run_services(
    services: Sequence[Service],
    stop: threading.Event,
    *,
    alive: Callable[[], bool] | None = None,
) -> int:
    """Run each service in a thread until ``stop`` is set or one of them fails.

    A service is ``(name, run)`` where ``run(stop)`` returns once ``stop`` is set.
    ``alive`` is checked while waiting (the embedded broker). Returns the exit status.
    """
    import structlog

    log = structlog.get_logger(__name__)
    failures: list[str] = []

    def guarded(name: str, run: Callable[[threading.Event], None]) -> None:
        try:
            run(stop)
        except LifecycleError as error:
            log.error("service_failed", service=name, error=str(error))
            failures.append(name)
        except Exception:
            log.exception("service_failed", service=name)
            failures.append(name)
        finally:
            stop.set()  # one service ending ends them all

    threads = [
        threading.Thread(target=guarded, args=service, name=service[0], daemon=True)
        for service in services
    ]
    for thread in threads:
        thread.start()
    while not stop.wait(0.5):
        if alive is not None and not alive():
            log.error("broker_exited")
            failures.append("broker")
            stop.set()
    for thread in threads:
        # Signals are handled by this thread, so it waits in short steps.
        while thread.is_alive():
            thread.join(0.5)
    return 1 if failures else 0
