"""The touchpoint consumer: ``crm.touchpoints`` into the event store, exactly once.

Delivery policy
  The consumer is a member of a consumer group and polls a batch at a time. Each
  partition's messages of a batch form a chunk (1,000 at most). Every message of a
  chunk is validated (Contract 1; and its key must be its ``customer_id``). The invalid
  ones are sent to the dead-letter topic and acknowledged by the broker first; then all
  valid touchpoints of the chunk are recorded in ONE transaction together with the
  partition's position (a ``Tracking`` row named ``kafka:<topic>:<partition>[:<topic
  id>]`` holding the next offset), through ``LifecycleApplication.record_batch``. A
  chunk of only invalid messages still records its position.

  The positions that count are the ones in the database. On every assignment the
  consumer seeks each partition to its stored position (the beginning when none is
  stored) before it fetches from it. Kafka's committed offsets are advanced after each
  batch for lag monitoring only; they are never read back.

  The effect is exactly once: a batch is either recorded with its position or not at
  all, so after a crash (even ``kill -9``) the restarted consumer resumes at the first
  unrecorded message. A chunk whose position was already stored (two members briefly
  owning a partition during a rebalance) writes nothing, and a second delivery of the
  same (``customer_id``, ``event_id``) is a duplicate that changes nothing.

  The tracking name carries the broker's topic id when it reports one (Kafka 2.8+,
  KIP-516): a topic deleted and created again, or an embedded broker restarted with
  empty memory storage, starts its offsets from zero under a new id, so its messages
  are read from the beginning instead of being mistaken for ones already recorded.

Error policy
  - Poison messages (not JSON, schema violations, too large, too far in the future,
    unknown kind, a schema version this engine does not know, key not the
    customer_id) are dead-lettered with the reason; they never stop or slow the
    consumer. Once the cause is fixed (upstream, or by an upgrade of the engine),
    ``lifecycle dead-letters redrive`` publishes them again (``consumers.dead_letters``).
  - Broker unreachable: kafka-python reconnects with capped exponential backoff; the
    consumer logs ``broker_unavailable`` at growing intervals while it is away and
    ``broker_available_again`` when it returns. Dead letters wait for the broker.
  - Database unavailable: the consumer stops fetching and retries the same chunk with
    capped exponential backoff (``database_unavailable``); it never stores a position
    past a message that is not recorded.
  - Stop (SIGTERM, SIGINT): the batch in hand is finished, then the consumer leaves
    its group and closes. A stop during a retry abandons the unrecorded chunk, which the
    next owner of the partition reads again.
  - Any other error is a bug: it is logged and raised, and nothing past it is stored.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from eventsourcing.persistence import Tracking
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from consumers import metrics
from consumers.clients import ClosedOnExit, connect_consumer, connect_producer
from consumers.dead_letters import DeadLetter, DeadLetterPublisher
from consumers.faults import is_database_fault
from consumers.kafka_internals import broker_reachable, topic_id
from lifecycle.domain.clock import utc_now
from lifecycle.domain.errors import RejectedTouchpoint
from lifecycle.domain.messages import GATE, MessageGate, MessageRules
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.faults import Backoff, Stopped, retry
from lifecycle.service.application import BatchOutcome, LifecycleApplication

log = structlog.get_logger(__name__)

KEY_MISMATCH = "key_mismatch"
POLL_TIMEOUT_MS = 500
# At most this many messages per transaction. On PostgreSQL, eventsourcing inserts a
# transaction's events as one pipelined statement, and psycopg slows down sharply once
# that statement passes a megabyte or so (~1,000 touchpoints): 5,000 per transaction
# records at a quarter of the rate of 1,000.
CHUNK_MAX_MESSAGES = 1_000
DATABASE_BACKOFF = Backoff(initial=0.5, maximum=30.0)
BROKER_LOG_BACKOFF = Backoff(initial=1.0, maximum=60.0)


def tracking_name(topic: str, partition: int, topic_id: str | None = None) -> str:
    """The name under which a partition's position is stored with the events."""
    name = f"kafka:{topic}:{partition}"
    return f"{name}:{topic_id}" if topic_id else name


def validate(
    record: Any, now: datetime, rules: MessageRules, gate: MessageGate = GATE
) -> Touchpoint:
    """The touchpoint of a consumed message; ``RejectedTouchpoint`` when it is invalid."""
    touchpoint = gate.parse(record.value or b"", now, rules)
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
    if key != touchpoint.customer_id:
        reason = (
            "message has no key"
            if key is None
            else f"message key {key[:128]!r} is not the customer_id"
        )
        raise RejectedTouchpoint(
            KEY_MISMATCH, f"{reason}: Contract 1 keys each message by its customer_id"
        )
    return touchpoint


@dataclass
class IngestStats:
    """What one consumer did since it started."""

    messages: int = 0
    recorded: int = 0
    duplicates: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    stage_changes: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    chunks_already_recorded: int = 0

    @property
    def rejected(self) -> int:
        return sum(self.dead_letters.values())


@dataclass
class _BatchSummary:
    messages: int = 0
    recorded: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    positions: dict[int, int] = field(default_factory=dict)
    transactions: int = 0
    lock_seconds: float = 0.0


@dataclass
class _Partition:
    """A partition this consumer owns and has positioned."""

    name: str
    topic_id: str | None
    position: int | None


class TouchpointIngest(ClosedOnExit):
    """A consumer-group member recording touchpoints from one topic (see module doc)."""

    def __init__(
        self,
        app: LifecycleApplication,
        *,
        bootstrap: str,
        topic: str,
        group_id: str,
        dead_letter_topic: str,
        rules: MessageRules,
        max_records: int = 5_000,
        clock: Callable[[], datetime] = utc_now,
        ingest_metrics: metrics.IngestMetrics = metrics.INGEST,
        consumer_options: Mapping[str, Any] | None = None,
        gate: MessageGate = GATE,
    ) -> None:
        self.app = app
        self.gate = gate
        """The message versions this consumer accepts: all the engine knows (a narrower
        gate stands for an older engine in tests of the upgrade story)."""
        self.bootstrap = bootstrap
        self.topic = topic
        self.group_id = group_id
        self.dead_letter_topic = dead_letter_topic
        self.rules = rules
        self.max_records = max_records
        self.clock = clock
        self.metrics = ingest_metrics
        self.consumer_options = dict(consumer_options or {})
        self.stats = IngestStats()
        self.log = log.bind(topic=topic, group=group_id)
        self._consumer: KafkaConsumer | None = None
        self._dead_letters: DeadLetterPublisher | None = None
        self._owned: dict[TopicPartition, _Partition] = {}
        self._unpositioned: set[TopicPartition] = set()
        self._lock = threading.Lock()  # the rebalance listener runs on kafka-python's IO thread
        self._broker_away_since: float | None = None
        self._broker_next_log = 0.0
        self._broker_log_count = 0

    # Life cycle ------------------------------------------------------------------------

    def open(self, stop: threading.Event) -> TouchpointIngest:
        """Connect (waiting for the broker) and join the group. Raises ``Stopped``."""
        producer = connect_producer(
            self.bootstrap,
            "lifecycle-dead-letters",
            stop,
            self.log,
            max_request_size=8 * 1024 * 1024,
        )
        self._dead_letters = DeadLetterPublisher(producer, self.dead_letter_topic)
        options: dict[str, Any] = {"max_poll_records": self.max_records, **self.consumer_options}
        consumer = connect_consumer(
            self.bootstrap, "lifecycle-ingest", stop, self.log, group_id=self.group_id, **options
        )
        self._consumer = consumer
        consumer.subscribe([self.topic], listener=_Listener(self))
        self.log.info("consumer_started", bootstrap=self.bootstrap)
        return self

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            # Leaving the group hands our partitions over at once; positions are stored.
            consumer.close(autocommit=False)
        if self._dead_letters is not None:
            self._dead_letters.producer.close()
            self._dead_letters = None
        self.log.info(
            "consumer_stopped",
            messages=self.stats.messages,
            recorded=self.stats.recorded,
            duplicates=self.stats.duplicates,
            dead_letters=self.stats.rejected,
        )

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished first."""
        try:
            self.open(stop)
            while not stop.is_set():
                self.poll_once(stop)
        except Stopped:
            self.log.info("consumer_stopping_during_retry")
        finally:
            self.close()

    def consume_until(
        self, targets: Mapping[int, int], stop: threading.Event, timeout: float = 120.0
    ) -> None:
        """Consume until each partition's stored position reaches ``targets[partition]``
        (next offsets, as the producer's acknowledgements give them)."""
        deadline = time.monotonic() + timeout
        while not self._reached(targets):
            if stop.is_set():
                raise Stopped("stopped before the topic was consumed")
            if time.monotonic() > deadline:
                raise TimeoutError(f"positions {targets} not reached in {timeout} s")
            self.poll_once(stop)

    @property
    def assigned_partitions(self) -> list[int]:
        """The partitions of the topic this member owns now."""
        with self._lock:
            return sorted(p.partition for p in (*self._owned, *self._unpositioned))

    def stored_position(self, partition: int) -> int | None:
        """The next offset of ``partition`` recorded in the database, if any."""
        consumer = self._require_consumer()
        name = tracking_name(self.topic, partition, topic_id(consumer, self.topic))
        return self.app.recorder.max_tracking_id(name)

    # One poll --------------------------------------------------------------------------

    def poll_once(self, stop: threading.Event) -> int:
        """Poll one batch and settle it; the number of messages settled."""
        consumer = self._require_consumer()
        self._position_new_partitions(stop)
        records = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=self.max_records)
        self._drop_recreated_topics(records)
        self._position_new_partitions(stop)
        self._watch_broker(consumer, bool(records))
        if not records:
            return 0
        started = time.perf_counter()
        now = self.clock()
        summary = _BatchSummary()
        for partition, messages in records.items():
            owned = self._owned.get(partition)
            if owned is None or not messages:
                # Revoked, or assigned again during that poll: its next owner, maybe us,
                # reads it from the stored position.
                continue
            for start in range(0, len(messages), CHUNK_MAX_MESSAGES):
                if self._owned.get(partition) is not owned:
                    break  # revoked while waiting for the database: as above
                chunk = messages[start : start + CHUNK_MAX_MESSAGES]
                self._settle(partition, owned, chunk, now, stop, summary)
        self._after_batch(consumer, summary, time.perf_counter() - started)
        return summary.messages

    def _settle(
        self,
        partition: TopicPartition,
        owned: _Partition,
        messages: Sequence[Any],
        now: datetime,
        stop: threading.Event,
        summary: _BatchSummary,
    ) -> None:
        touchpoints: list[Touchpoint] = []
        letters: list[DeadLetter] = []
        for message in messages:
            try:
                touchpoints.append(validate(message, now, self.rules, self.gate))
            except RejectedTouchpoint as rejection:
                letters.append(DeadLetter.of(message, rejection))
        if letters:
            assert self._dead_letters is not None
            self._dead_letters.publish(letters, stop)  # acknowledged before the position
        next_offset = messages[-1].offset + 1
        tracking = Tracking(owned.name, next_offset)
        outcome = retry(
            lambda: self.app.record_batch(touchpoints, tracking),
            is_fault=is_database_fault,
            cause="database",
            stop=stop,
            log=self.log.bind(partition=partition.partition, offset=next_offset),
            backoff=DATABASE_BACKOFF,
            on_retry=self._waiting_for_the_database,
        )
        owned.position = next_offset
        if outcome.already_tracked:
            self.stats.chunks_already_recorded += 1
            self.log.warning(
                "chunk_already_recorded",
                partition=partition.partition,
                position=next_offset,
                messages=len(messages),
            )
        self._count(partition, messages, letters, outcome, summary)

    def _waiting_for_the_database(self) -> None:
        """Between attempts to reach the database: poll with every partition paused, so
        that the group does not take this member for stuck (``max_poll_interval_ms``)
        and move its partitions while nobody could record them anyway; rebalances that
        follow a member leaving meanwhile stalled the embedded broker's coordinator."""
        self.metrics.retries.labels("database").inc()
        consumer = self._require_consumer()
        held = set(consumer.paused())
        consumer.pause(*consumer.assignment())
        try:
            consumer.poll(timeout_ms=0)  # nothing fetchable: it only keeps the member
        finally:
            with self._lock:
                waiting = set(self._unpositioned)
            consumer.resume(*(p for p in consumer.assignment() if p not in held | waiting))

    def _count(
        self,
        partition: TopicPartition,
        messages: Sequence[Any],
        letters: Sequence[DeadLetter],
        outcome: BatchOutcome,
        summary: _BatchSummary,
    ) -> None:
        recorded, duplicates = outcome.recorded, outcome.duplicates
        summary.messages += len(messages)
        summary.recorded += recorded
        summary.duplicates += duplicates
        summary.dead_letters += len(letters)
        summary.positions[partition.partition] = messages[-1].offset + 1
        summary.transactions += 1
        summary.lock_seconds += outcome.lock_seconds
        self.stats.messages += len(messages)
        self.stats.recorded += recorded
        self.stats.duplicates += duplicates
        self.stats.stage_changes.update(outcome.stage_changes)
        m = self.metrics
        m.messages.labels(self.topic).inc(len(messages))
        m.recorded.labels(self.topic).inc(recorded)
        m.duplicates.labels(self.topic).inc(duplicates)
        for rule, count in outcome.stage_changes.items():
            m.stage_changes.labels(rule).inc(count)
        for letter in letters:
            self.stats.dead_letters[letter.error_code] += 1
            m.dead_letters.labels(self.topic, letter.error_code).inc()
        m.position.labels(self.topic, str(partition.partition)).set(messages[-1].offset + 1)

    def _after_batch(self, consumer: KafkaConsumer, summary: _BatchSummary, seconds: float) -> None:
        # For lag monitoring only: the positions that count are in the database.
        offsets = {
            TopicPartition(self.topic, partition): OffsetAndMetadata(position, "", -1)
            for partition, position in summary.positions.items()
        }
        if offsets:
            consumer.commit_async(offsets=offsets)
        lag = self._lag(consumer)
        self.stats.batches += 1
        self.metrics.batches.labels(self.topic).inc()
        self.log.info(
            "batch_recorded",
            messages=summary.messages,
            recorded=summary.recorded,
            duplicates=summary.duplicates,
            dead_letters=summary.dead_letters,
            positions=summary.positions,
            transactions=summary.transactions,
            lock_seconds=round(summary.lock_seconds, 4),
            lag=lag,
            seconds=round(seconds, 4),
        )

    def _lag(self, consumer: KafkaConsumer) -> int | None:
        total: int | None = None
        for partition, owned in list(self._owned.items()):
            try:
                highwater = consumer.highwater(partition)
            except Exception:  # no longer assigned
                continue
            if highwater is None or owned.position is None:
                continue
            lag = max(highwater - owned.position, 0)
            self.metrics.lag.labels(self.topic, str(partition.partition)).set(lag)
            total = (total or 0) + lag
        return total

    # Assignment ------------------------------------------------------------------------

    def _assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Listener: hold new partitions until they are positioned from the database."""
        consumer = self._require_consumer()
        with self._lock:
            self._unpositioned.update(partitions)
            for partition in partitions:
                self._owned.pop(partition, None)
        consumer.pause(*partitions)

    def _revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Listener: forget partitions; everything taken from them is already recorded."""
        with self._lock:
            for partition in partitions:
                self._owned.pop(partition, None)
                self._unpositioned.discard(partition)
                for gauge in (self.metrics.lag, self.metrics.position):
                    with contextlib.suppress(KeyError):
                        gauge.remove(partition.topic, str(partition.partition))
        if partitions:
            self.log.info("partitions_revoked", partitions=sorted(p.partition for p in partitions))

    def _position_new_partitions(self, stop: threading.Event) -> None:
        with self._lock:
            pending = sorted(self._unpositioned)
        if not pending:
            return
        consumer = self._require_consumer()
        positions: dict[int, int | None] = {}
        for partition in pending:
            the_topic_id = topic_id(consumer, partition.topic)
            name = tracking_name(partition.topic, partition.partition, the_topic_id)
            position = retry(
                lambda name=name: self.app.recorder.max_tracking_id(name),  # type: ignore[misc]
                is_fault=is_database_fault,
                cause="database",
                stop=stop,
                log=self.log.bind(partition=partition.partition),
                backoff=DATABASE_BACKOFF,
                on_retry=lambda: self.metrics.retries.labels("database").inc(),
            )
            with self._lock:
                if partition not in self._unpositioned:
                    continue  # revoked meanwhile
                self._unpositioned.discard(partition)
                self._owned[partition] = _Partition(name, the_topic_id, position)
            if position is None:
                consumer.seek_to_beginning(partition)
            else:
                consumer.seek(partition, position)
                self.metrics.position.labels(self.topic, str(partition.partition)).set(position)
            consumer.resume(partition)
            positions[partition.partition] = position
        self.log.info("partitions_assigned", positions=positions)

    def _drop_recreated_topics(self, records: dict[TopicPartition, Any]) -> None:
        """Position again the partitions whose topic id changed under us; drop their
        records of this poll (they were fetched at an offset of the old topic)."""
        consumer = self._require_consumer()
        current = {topic: topic_id(consumer, topic) for topic in {p.topic for p in records}}
        for partition in list(records):
            owned = self._owned.get(partition)
            now_id = current[partition.topic]
            if owned is None or now_id is None or owned.topic_id in (None, now_id):
                continue
            self.log.warning(
                "topic_recreated",
                partition=partition.partition,
                old_topic_id=owned.topic_id,
                topic_id=now_id,
            )
            del records[partition]
            self._assigned([partition])

    # Broker reachability ---------------------------------------------------------------

    def _watch_broker(self, consumer: KafkaConsumer, got_records: bool) -> None:
        if got_records or broker_reachable(consumer):
            if self._broker_away_since is not None:
                self.log.info(
                    "broker_available_again",
                    seconds_away=round(time.monotonic() - self._broker_away_since, 1),
                )
                self._broker_away_since = None
            return
        now = time.monotonic()
        if self._broker_away_since is None:
            self._broker_away_since = now
            self._broker_log_count = 0
            self._broker_next_log = now
        if now >= self._broker_next_log:
            delay = BROKER_LOG_BACKOFF.delay(self._broker_log_count)
            self._broker_log_count += 1
            self._broker_next_log = now + delay
            self.metrics.retries.labels("broker").inc()
            self.log.warning(
                "broker_unavailable",
                bootstrap=self.bootstrap,
                seconds_away=round(now - self._broker_away_since, 1),
                next_report_in_seconds=delay,
            )

    # Helpers ---------------------------------------------------------------------------

    def _reached(self, targets: Mapping[int, int]) -> bool:
        for partition, target in targets.items():
            owned = self._owned.get(TopicPartition(self.topic, partition))
            position = owned.position if owned is not None else self.stored_position(partition)
            if position is None or position < target:
                return False
        return True

    def _require_consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the consumer is not open")
        return self._consumer


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, ingest: TouchpointIngest) -> None:
        self.ingest = ingest

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self.ingest._revoked(list(revoked))

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.ingest._assigned(list(assigned))

    def on_partitions_lost(self, lost: Sequence[TopicPartition]) -> None:
        self.ingest._revoked(list(lost))
