"""Dead letters: invalid touchpoint messages, kept whole on ``crm.touchpoints.dlq``, and
their re-drive.

A dead letter carries the original key, value and headers, plus the headers
``error_code``, ``error_reason``, ``source_topic``, ``source_partition`` and
``source_offset`` (UTF-8 text). ``DeadLetterPublisher.publish`` returns only once the
broker has acknowledged every letter, so the consumer can store its position past
them: nothing invalid is lost, and a crash before the position is stored sends the same
letters again (dead letters are delivered at least once).

Re-drive (``lifecycle dead-letters redrive``, after a fix upstream or an upgrade of the
engine): ``read_dead_letters`` reads the topic from its beginning to its end;
``redrive`` publishes each chosen letter's original key, value and headers to the
touchpoint topic again, with the headers ``redriven_from_offset`` (the letter's offset)
and ``redrive_count`` (how many times the message has been re-driven, this time
included). It remembers what it re-drove by the letter's identity, a hash of the
original message (key, value, headers), in a ``RedriveLog``: a message is the same
whichever offset it was found at, so a broker that restarts its offsets, or the same
message dead-lettered twice, is still recognised, and a message that failed again after
a re-drive (back on the topic with its count raised) is the message re-driven before.
A second run re-drives nothing it re-drove before unless asked to (``again``).

Delivery policy of a re-drive: at least once. Each letter is published, acknowledged,
then remembered; a crash in between re-drives it again on the next run, which records
nothing twice, since ingestion is idempotent by (``customer_id``, ``event_id``).
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import MessageSizeTooLargeError

from consumers.faults import is_broker_fault
from consumers.redrive_log import Redrive, RedriveLog
from lifecycle.domain.errors import LifecycleError, RejectedTouchpoint
from lifecycle.faults import Backoff, retry

log = structlog.get_logger(__name__)

Headers = list[tuple[str, bytes]]

ERROR_HEADERS = ("error_code", "error_reason", "source_topic", "source_partition", "source_offset")
REDRIVE_HEADERS = ("redriven_from_offset", "redrive_count")
VALUE_DROPPED = "value_dropped"
ENGINE_HEADERS = frozenset({*ERROR_HEADERS, *REDRIVE_HEADERS, VALUE_DROPPED})
"""Headers the engine adds to a message; every other header is the upstream's own."""
ACK_TIMEOUT_SECONDS = 30.0
READ_TIMEOUT_SECONDS = 60.0


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
        headers = [*letter.kafka_headers(), (VALUE_DROPPED, f"{size} bytes".encode())]
        log.error(
            "dead_letter_value_dropped",
            source_topic=letter.source_topic,
            source_partition=letter.source_partition,
            source_offset=letter.source_offset,
            size=size,
        )
        return self.producer.send(self.topic, key=letter.key, value=None, headers=headers)


# Reading dead letters back -------------------------------------------------------------


class DeadLettersUnreadable(LifecycleError):
    code = "dead_letters_unreadable"


@dataclass(frozen=True)
class StoredDeadLetter:
    """A dead letter as the dead-letter topic holds it."""

    partition: int
    offset: int
    timestamp: datetime | None
    key: bytes | None
    value: bytes | None
    headers: Headers

    @classmethod
    def of(cls, record: Any) -> StoredDeadLetter:
        """The dead letter a kafka-python ``ConsumerRecord`` of the topic holds."""
        stamp = record.timestamp
        return cls(
            partition=record.partition,
            offset=record.offset,
            timestamp=datetime.fromtimestamp(stamp / 1000, UTC) if stamp and stamp > 0 else None,
            key=record.key,
            value=record.value,
            headers=list(record.headers or []),
        )

    def header(self, name: str) -> str | None:
        """The last value of header ``name``, as text."""
        values = [value for key, value in self.headers if key == name]
        return values[-1].decode("utf-8", errors="replace") if values else None

    @property
    def error_code(self) -> str:
        return self.header("error_code") or ""

    @property
    def redrive_count(self) -> int:
        """How many times the message had been re-driven when it came back here."""
        return _whole_number(self.header("redrive_count")) or 0

    @property
    def value_dropped(self) -> bool:
        """The message was too large to keep: its headers are here, its value is not."""
        return self.header(VALUE_DROPPED) is not None

    @property
    def original_headers(self) -> Headers:
        """The headers the upstream sent, without those the engine added."""
        return [(key, value) for key, value in self.headers if key not in ENGINE_HEADERS]

    @property
    def identity(self) -> str:
        """What makes this message the same message wherever it is found: a SHA-256 of its
        key, value and original headers, each part length-prefixed."""
        digest = hashlib.sha256()
        headers = [part for name, value in self.original_headers for part in (name.encode(), value)]
        for part in (self.key, self.value, *headers):
            if part is None:
                digest.update(b"-")
            else:
                digest.update(f"{len(part)}:".encode())
                digest.update(part)
        return digest.hexdigest()

    def as_dict(self, redriven: int = 0) -> dict[str, Any]:
        """What ``lifecycle dead-letters list`` shows of it; ``redriven``: how many times
        the re-drive remembers re-driving the message."""
        return {
            "partition": self.partition,
            "offset": self.offset,
            "time": self.timestamp.isoformat() if self.timestamp else None,
            "key": self.key.decode("utf-8", errors="replace") if self.key is not None else None,
            "error_code": self.error_code,
            "error_reason": self.header("error_reason"),
            "source_partition": _whole_number(self.header("source_partition")),
            "source_offset": _whole_number(self.header("source_offset")),
            "redrive_count": max(self.redrive_count, redriven),
        }


def _whole_number(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def read_dead_letters(
    consumer: KafkaConsumer, topic: str, timeout: float = READ_TIMEOUT_SECONDS
) -> list[StoredDeadLetter]:
    """Every dead letter on ``topic``, from the beginning of each partition to its end as
    the broker reports it when read (the high watermark of a fetch: some brokers answer
    a request for the end offset with less), in offset order per partition.

    ``consumer`` belongs to no group: it is assigned the partitions."""
    numbers = consumer.partitions_for_topic(topic)
    if numbers is None:
        raise DeadLettersUnreadable(f"the dead-letter topic {topic} does not exist")
    partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    letters: list[StoredDeadLetter] = []
    deadline = time.monotonic() + timeout
    while not _read_to_the_end(consumer, partitions):
        if time.monotonic() > deadline:
            raise DeadLettersUnreadable(f"{topic} was not read to its end in {timeout:.0f} s")
        for records in consumer.poll(timeout_ms=200).values():
            letters.extend(StoredDeadLetter.of(record) for record in records)
    return sorted(letters, key=lambda letter: (letter.partition, letter.offset))


def _read_to_the_end(consumer: KafkaConsumer, partitions: Sequence[TopicPartition]) -> bool:
    for partition in partitions:
        highwater = consumer.highwater(partition)
        if highwater is None or consumer.position(partition) < highwater:
            return False
    return True


def choose(
    letters: Iterable[StoredDeadLetter],
    *,
    code: str | None = None,
    offsets: Collection[int] = (),
) -> list[StoredDeadLetter]:
    """The letters with error ``code`` (any if None) at ``offsets`` (any if empty)."""
    return [
        letter
        for letter in letters
        if (code is None or letter.error_code == code) and (not offsets or letter.offset in offsets)
    ]


@dataclass
class RedriveReport:
    """What one re-drive did."""

    redriven: list[Redrive] = field(default_factory=list)
    already_redriven: int = 0
    """Letters passed over: their message was re-driven before (and ``again`` not asked)."""
    repeats: int = 0
    """Letters passed over: a later letter of the same message stands for them."""
    without_value: int = 0
    """Letters passed over: the message was too large to keep, there is nothing to send."""
    next_offsets: dict[int, int] = field(default_factory=dict)
    """Per partition of the touchpoint topic, the offset after the last message re-driven
    (what a consumer must reach to have read them all)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "redriven": len(self.redriven),
            "offsets": [redrive.offset for redrive in self.redriven],
            "already_redriven": self.already_redriven,
            "repeats": self.repeats,
            "without_value": self.without_value,
        }


def redrive(
    letters: Sequence[StoredDeadLetter],
    producer: KafkaProducer,
    topic: str,
    memory: RedriveLog,
    *,
    again: bool = False,
    now: datetime | None = None,
) -> RedriveReport:
    """Publish ``letters`` to ``topic`` again, each message once (the latest letter of
    it), and remember them; messages re-driven before only when ``again``."""
    report = RedriveReport()
    latest: dict[str, StoredDeadLetter] = {}
    for letter in letters:
        if letter.value_dropped:
            report.without_value += 1
            continue
        identity = letter.identity
        if identity in latest:
            report.repeats += 1
        latest[identity] = letter
    counts = memory.counts(list(latest))
    chosen: list[tuple[StoredDeadLetter, Redrive]] = []
    at = now or datetime.now(UTC)
    for identity, letter in latest.items():
        before = counts.get(identity, 0)
        if before and not again:
            report.already_redriven += 1
            continue
        count = max(before, letter.redrive_count) + 1
        chosen.append((letter, Redrive(identity, count, letter.offset, at)))
    futures = [
        producer.send(
            topic,
            key=letter.key,
            value=letter.value,
            headers=[
                *letter.original_headers,
                ("redriven_from_offset", str(letter.offset).encode()),
                ("redrive_count", str(redriven.count).encode()),
            ],
        )
        for letter, redriven in chosen
    ]
    producer.flush(timeout=ACK_TIMEOUT_SECONDS)
    for future in futures:
        sent = future.get(timeout=ACK_TIMEOUT_SECONDS)
        offsets = report.next_offsets
        offsets[sent.partition] = max(offsets.get(sent.partition, 0), sent.offset + 1)
    # Remembered once acknowledged: a crash before this re-drives them again, harmlessly.
    memory.remember([redriven for _, redriven in chosen])
    report.redriven = [redriven for _, redriven in chosen]
    log.info("dead_letters_redriven", topic=topic, **report.as_dict())
    return report
