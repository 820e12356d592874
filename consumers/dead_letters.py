"""Dead letters: invalid touchpoint messages, kept whole on ``crm.touchpoints.dlq``.

A dead letter carries the original key, value and headers, plus the headers
``error_code``, ``error_reason``, ``source_topic``, ``source_partition`` and
``source_offset`` (UTF-8 text). ``DeadLetterPublisher.publish`` returns only once the
broker has acknowledged every letter, so the consumer can store its position past
them: nothing invalid is lost, and a crash before the position is stored sends the same
letters again (dead letters are delivered at least once).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError

from consumers.faults import is_broker_fault
from lifecycle.domain.errors import RejectedTouchpoint
from lifecycle.faults import Backoff, retry

log = structlog.get_logger(__name__)

Headers = list[tuple[str, bytes]]

ACK_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class DeadLetter:
    """One rejected message and why it was rejected."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    error_code: str
    error_reason: str
    source_topic: str
    source_partition: int
    source_offset: int

    @classmethod
    def of(cls, record: Any, rejection: RejectedTouchpoint) -> DeadLetter:
        """The dead letter of a kafka-python ``ConsumerRecord``."""
        return cls(
            key=record.key,
            value=record.value,
            headers=list(record.headers or []),
            error_code=rejection.code,
            error_reason=rejection.reason,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
        )

    def kafka_headers(self) -> Headers:
        return [
            *self.headers,
            ("error_code", self.error_code.encode()),
            ("error_reason", self.error_reason.encode()),
            ("source_topic", self.source_topic.encode()),
            ("source_partition", str(self.source_partition).encode()),
            ("source_offset", str(self.source_offset).encode()),
        ]


class DeadLetterPublisher:
    """Sends dead letters and waits for the broker's acknowledgement of each."""

    def __init__(self, producer: KafkaProducer, topic: str, backoff: Backoff | None = None):
        self.producer = producer
        self.topic = topic
        self.backoff = backoff or Backoff(initial=0.5, maximum=10.0)

    def publish(self, letters: Sequence[DeadLetter], stop: threading.Event) -> None:
        """Return once every letter is acknowledged; retry while the broker is away.

        Raises ``Stopped`` if ``stop`` is set while waiting for the broker.
        """
        pending = list(letters)
        while pending:
            pending = retry(
                functools.partial(self._send, pending),
                is_fault=is_broker_fault,
                cause="broker",
                stop=stop,
                log=log.bind(topic=self.topic),
                backoff=self.backoff,
            )

    def _send(self, letters: list[DeadLetter]) -> list[DeadLetter]:
        """Send all, wait for all; the letters to send again (none on success)."""
        futures = [(letter, self._send_one(letter)) for letter in letters]
        self.producer.flush(timeout=ACK_TIMEOUT_SECONDS)
        failed: list[DeadLetter] = []
        first_fault: BaseException | None = None
        for letter, future in futures:
            try:
                future.get(timeout=ACK_TIMEOUT_SECONDS)
            except MessageSizeTooLargeError:
                # The letter is larger than the dead-letter topic accepts: keep the
                # headers and say so, rather than block the partition forever.
                self._send_without_value(letter).get(timeout=ACK_TIMEOUT_SECONDS)
            except Exception as error:
                if not is_broker_fault(error):
                    raise
                failed.append(letter)
                first_fault = first_fault or error
        if first_fault is not None and len(failed) == len(letters):
            raise first_fault  # nothing got through: let retry() back off
        return failed

    def _send_one(self, letter: DeadLetter) -> Any:
        return self.producer.send(
            self.topic, key=letter.key, value=letter.value, headers=letter.kafka_headers()
        )

    def _send_without_value(self, letter: DeadLetter) -> Any:
        size = len(letter.value or b"")
        headers = [*letter.kafka_headers(), ("value_dropped", f"{size} bytes".encode())]
        log.error(
            "dead_letter_value_dropped",
            source_topic=letter.source_topic,
            source_partition=letter.source_partition,
            source_offset=letter.source_offset,
            size=size,
        )
        return self.producer.send(self.topic, key=letter.key, value=None, headers=headers)
