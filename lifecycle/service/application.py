"""The application service of the write side: record touchpoints, change stages by
hand, assign account managers, sweep for inactivity, and answer history, point-in-time
state and the stage in force at a business time.

Recording a batch is one transaction: the touchpoints are grouped by customer, each
relationship is loaded once, and all new events are saved together, optionally with a
``Tracking`` position (the Kafka consumer's exactly-once path). Aggregates are cached
between batches; a concurrent writer shows up as a version conflict, after which the
batch is retried from freshly loaded aggregates, so a stale cache never writes wrongly.

A touchpoint whose (customer, event id) was recorded before is a duplicate: the store
keeps every recorded key, written with the events, and one lookup per batch finds a
batch's duplicates (``lifecycle.persistence.recorders``); a key another writer records
meanwhile fails the transaction, which is retried like a version conflict.

Writes through one application object are taken one at a time (a lock): cached aggregates
are shared objects, and a process that writes from several threads (the HTTP API) must
not decide two batches on the same one at once.

Personal data is encrypted by the vault (``lifecycle.persistence.personal``) before a batch reaches
the aggregates, so events hold only ciphertext; ``forget`` destroys a customer's key and
records ``PersonalDataErased``.

The policy in force is the one adopted in the log (``lifecycle.domain.policy_stream``),
never a file alone. Every process that records (import, the consumer, the sweep, a
manual change, an adoption) calls ``follow_policy`` as it starts: a store without a
policy adopts the process's policy file, or the built-in v1, then and there (read-only
processes never do: they never decide); a policy file other than the adopted policy is
refused (``PolicyMismatch``), so two processes can never decide with different rules.

How a process notices an adoption, and why no batch is recorded under a superseded
version: every write that a policy decided (a batch, a sweep part, a manual change, an
adoption's re-evaluation) carries the condition "the policy stream is still at the
version I decided under" (``StreamAt``), which the recorder checks inside the write's
own transaction once that transaction holds the log's write lock: SQLite's single
writer lock, taken by the first insert, or on PostgreSQL the ``EXCLUSIVE`` lock on the
events table that every insert of events takes, adoptions included. An adoption is an
insert into the policy stream, so it either committed before the check (which then
sees the stream moved: ``StreamMoved``, nothing is written, the process follows the new
version and decides the batch again from freshly loaded relationships) or cannot
commit until the batch has (the batch was then decided under the version in force when
it committed, and the adoption's re-evaluation sees its result). The check is one
primary-key lookup per batch; a process that writes nothing for a while notices at its
next write, before anything is recorded. ``StageChanged.policy_version`` therefore
always names the version in force when the change was committed.

``adopt_policy`` records ``PolicyAdopted`` and then re-evaluates every relationship
that had started when it was adopted, in batches, each committed with a ``Tracking``
row (``policy-adoption:<version>``, the position of the last relationship start it
covered): a run stopped anywhere, even by ``kill -9``, resumes after the last committed
batch, and a finished one does nothing when run again.
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    Cache,
    ProcessingEvent,
)
from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    ProcessRecorder,
    StoredEvent,
    Tracking,
    Transcoder,
)
from eventsourcing.utils import EnvType

from lifecycle.domain.analytics import ANALYTICS_STREAM, AnalyticsModels, ModelFit
from lifecycle.domain.clock import utc_now
from lifecycle.domain.errors import LifecycleError, PolicyMismatch, RelationshipNotFound
from lifecycle.domain.hashchain import install_hasher
from lifecycle.domain.policy import Policy, PolicyText
from lifecycle.domain.policy_stream import POLICY_STREAM_ID, Adoption, PolicyStream
from lifecycle.domain.relationship import (
    RELATIONSHIP_EVENTS,
    Relationship,
    StageInForce,
    relationship_id,
    stage_in_force,
)
from lifecycle.domain.streams import install_event_trigger, stream_id
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Stage
from lifecycle.persistence import library
from lifecycle.persistence.personal import PersonalDataVault
from lifecycle.persistence.recorders import (
    CONDITION,
    StreamAt,
    StreamMoved,
    TouchpointKey,
    ensure_touchpoint_keys,
    existing_originator_ids,
    recorded_touchpoints,
    stream_log,
)
from lifecycle.persistence.topics import stored_topics
from lifecycle.persistence.transcoding import ChainedMapper, OrjsonTranscoder, orjson_hasher

MAX_ATTEMPTS = 8
CONFLICT_PAUSE_SECONDS = 0.005
LATEST = sys.maxsize  # a version beyond any: reads it bypass the write-side cache

RELATIONSHIP_TOPICS = tuple(topic for cls in RELATIONSHIP_EVENTS for topic in stored_topics(cls))
"""Every topic a relationship's events are stored under: streams that are not
relationships (the policy's, the analytics models') share the log."""
RELATIONSHIP_STARTED_TOPICS = stored_topics(Relationship.RelationshipStarted)
TOUCHPOINT_RECORDED_TOPICS = stored_topics(Relationship.TouchpointRecorded)
STAGE_CHANGED_TOPICS = stored_topics(Relationship.StageChanged)


RECORDED = "recorded"
DUPLICATE = "duplicate"

FIRST_USE_ACTOR = "lifecycle"
"""Who adopts a store's first policy: the first process that records into it."""
ADOPTION_TRACKING = "policy-adoption:{version}"
"""Where an adoption's re-evaluation keeps how far it got."""


def _log() -> Any:
    # Imported on first use: read-only commands (state, history) never log, and start
    # faster without the logging library.
    import structlog

    return structlog.get_logger(__name__)


@dataclass
class BatchOutcome:
    """What ``record_batch`` did: one status per touchpoint, in order, and where in the
    log its events went. Every path that records touchpoints (import, Kafka, HTTP)
    reports from this."""

    recorded: int = 0
    duplicates: int = 0
    stage_changes: Counter[str] = field(default_factory=Counter)
    already_tracked: bool = False
    """The batch's tracking position was recorded before: nothing was written."""
    statuses: list[str] = field(default_factory=list)
    """``recorded`` or ``duplicate``, one per touchpoint of the batch, in order."""
    position: int | None = None
    """The log position of the last event written (None: nothing was written), usable
    as ``min_position`` on the read API (read-your-writes)."""
    lock_seconds: float = 0.0
    """How long the batch's transaction held the log's write lock, which every writer of
    the store takes in turn (PostgreSQL's table lock for notification ids; SQLite's
    write lock): the part of a batch that does not scale out."""


@dataclass
class Assignment:
    """What ``assign_account_manager`` did."""

    relationship: Relationship
    changed: bool
    position: int | None = None
    """The log position of the event written (None: nothing changed)."""


@dataclass
class SweepOutcome:
    examined: int = 0
    dissolved: int = 0


@dataclass
class AdoptionOutcome:
    """What ``adopt_policy`` did."""

    version: int
    recorded: bool
    """Whether this run recorded the adoption (False: the policy was adopted already)."""
    adopted_at: datetime
    reevaluated: int = 0
    """Relationships this run re-evaluated."""
    moved: int = 0
    """Of those, the ones whose stage changed."""
    resumed_after: int | None = None
    """The log position of the last relationship start an earlier run had re-evaluated
    through (None: this run started the re-evaluation)."""
    superseded_by: int | None = None
    """A newer version adopted meanwhile, which stopped this re-evaluation (that
    version's adoption re-evaluates every relationship)."""


@dataclass(frozen=True)
class _Followed:
    """The adopted policy a process decides with, and the policy stream's version it
    was read at: the condition of every write it decides."""

    policy: Policy
    condition: StreamAt


class ConcurrencyConflict(Exception):
    """Another writer kept changing the same relationships; the batch was not recorded."""


class LifecycleApplication(Application[UUID]):
    name = "Lifecycle"
    snapshotting_intervals = {Relationship: 100}  # noqa: RUF012 (the library's class variable)

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        policy_file: PolicyText | None = None,
        snapshot_interval: int = 100,
        vault: PersonalDataVault | None = None,
    ) -> None:
        self.policy_file = policy_file
        """The policy this process was started with (``LIFECYCLE_POLICY_FILE``): the
        first adoption of a store without one, and refused if another is adopted."""
        self._followed: _Followed | None = None
        self.vault = vault
        # The library reads this per instance, so each deployment can set its interval.
        self.snapshotting_intervals = {Relationship: snapshot_interval}  # type: ignore[misc]
        self._interval = snapshot_interval
        self._writing = threading.Lock()
        super().__init__(env)
        self.recorder: ProcessRecorder
        self._touchpoint_keys_ensured = False

    def construct_recorder(self) -> ProcessRecorder:
        # A process recorder stores Tracking positions in the same transaction as events.
        return self.factory.process_recorder()

    def construct_mapper(self) -> Mapper[UUID]:
        mapper = super().construct_mapper()
        return ChainedMapper(
            transcoder=mapper.transcoder, compressor=mapper.compressor, cipher=mapper.cipher
        )

    def construct_transcoder(self) -> Transcoder:
        # The domain hashes each event's body with a fast encoder (byte for byte the
        # reference encoding: see lifecycle.domain.hashchain) and the transcoder stores the
        # very bytes it hashed; it makes each event without its dataclass's __init__
        # (lifecycle.persistence.library.trigger_event).
        install_hasher(orjson_hasher)
        install_event_trigger(library.trigger_event)
        return OrjsonTranscoder()

    # Commands -------------------------------------------------------------------------

    def record_touchpoint(self, touchpoint: Touchpoint) -> BatchOutcome:
        return self.record_batch([touchpoint])

    def record_batch(
        self, touchpoints: Sequence[Touchpoint], tracking: Tracking | None = None
    ) -> BatchOutcome:
        """Record touchpoints in arrival order, in one transaction with ``tracking``."""
        from lifecycle.domain.clock import utc_now

        if self.vault is not None:
            # Before any aggregate sees them: events only ever hold the ciphertext.
            touchpoints = self.vault.protect(touchpoints, utc_now())
        with self._writing:
            if not self._touchpoint_keys_ensured:
                # Here, not at start-up: only a process that records touchpoints needs
                # them, and read-only commands never write to a store.
                ensure_touchpoint_keys(self.recorder, TOUCHPOINT_RECORDED_TOPICS)
                self._touchpoint_keys_ensured = True
            return self._record_batch(touchpoints, tracking)

    def _record_batch(
        self, touchpoints: Sequence[Touchpoint], tracking: Tracking | None
    ) -> BatchOutcome:
        for attempt in range(MAX_ATTEMPTS):
            relationships: dict[UUID, Relationship] = {}
            outcome = BatchOutcome()
            followed = self._in_force()
            try:
                stored = self._stored_among(touchpoints)
                seen = self._recorded_among(touchpoints, stored)
                keys: list[TouchpointKey] = []
                snapshots: list[StoredEvent] = []
                for touchpoint in touchpoints:
                    key = (relationship_id(touchpoint.customer_id), touchpoint.event_id)
                    if key in seen:
                        outcome.duplicates += 1
                        outcome.statuses.append(DUPLICATE)
                        continue
                    seen.add(key)
                    keys.append(key)
                    relationship = self._relationship_for(touchpoint, relationships, stored)
                    before = relationship.version
                    relationship.record_touchpoint(touchpoint, followed.policy)
                    if relationship.version // self._interval > before // self._interval:
                        snapshots.append(self._snapshot(relationship))
                    outcome.recorded += 1
                    outcome.statuses.append(RECORDED)
                self._save_with_tracking(
                    relationships.values(), tracking, outcome, followed, keys, snapshots
                )
            except StreamMoved:
                self._forget_cached(relationships)
                self._follow_adopted()
                continue
            except IntegrityError:
                self._forget_cached(relationships)
                if tracking is not None and self.recorder.has_tracking_id(
                    tracking.application_name, tracking.notification_id
                ):
                    return BatchOutcome(already_tracked=True)
                _pause_after_conflict(attempt)
                continue
            except BaseException:
                self._forget_cached(relationships)
                raise
            return outcome
        msg = f"{len(touchpoints)} touchpoints not recorded after {MAX_ATTEMPTS} version conflicts"
        raise ConcurrencyConflict(msg)

    def change_stage(
        self, customer_id: str, to_stage: Stage, *, actor: str, reason: str, at: datetime
    ) -> Relationship:
        for _ in range(MAX_ATTEMPTS):
            followed = self._in_force()
            relationship = self.relationship(customer_id)
            relationship.change_stage(
                to_stage, actor=actor, reason=reason, at=at, policy_version=followed.policy.version
            )
            try:
                self._save_with_tracking([relationship], None, BatchOutcome(), followed)
            except StreamMoved:
                self._follow_adopted()
                continue
            return relationship
        raise ConcurrencyConflict(f"the policy kept changing: {customer_id} was not moved")

    def assign_account_manager(
        self, customer_id: str, manager_id: str | None, *, actor: str, reason: str, at: datetime
    ) -> Assignment:
        """Put ``manager_id`` in charge of the customer's relationship, or (None) take its
        account manager off."""
        with self._writing:
            for attempt in range(MAX_ATTEMPTS):
                relationship = self.relationship(customer_id)
                if manager_id is None:
                    changed = relationship.unassign_account_manager(
                        actor=actor, reason=reason, at=at
                    )
                else:
                    changed = relationship.assign_account_manager(
                        manager_id, actor=actor, reason=reason, at=at
                    )
                if not changed:
                    return Assignment(relationship, changed=False)
                try:
                    recordings = self.save(relationship)
                except IntegrityError:
                    # Another writer recorded onto it meanwhile: decide again.
                    _pause_after_conflict(attempt)
                    continue
                return Assignment(relationship, True, recordings[-1].notification.id)
        msg = f"the account manager of {customer_id!r} not changed after {MAX_ATTEMPTS} conflicts"
        raise ConcurrencyConflict(msg)

    def forget(
        self, customer_id: str, *, reason: str, actor: str | None, at: datetime
    ) -> tuple[Relationship, bool]:
        """Erase the customer's personal data: destroy their key, record
        ``PersonalDataErased``. Returns the relationship and whether it was erased now
        (False: it had been before; running it again finishes an interrupted erasure)."""
        if self.vault is None:
            raise LifecycleError("this application has no personal-data vault to erase from")
        relationship = self.relationship(customer_id)  # an unknown customer: nothing to erase
        # The key before the event: once it is gone the data is unreadable, whatever
        # happens next.
        self.vault.destroy(customer_id, at)
        if relationship.personal_data_erased:
            return relationship, False
        relationship.erase_personal_data(reason=reason, actor=actor, at=at)
        self.save(relationship)
        return relationship, True

    def record_model_fits(self, fits: Sequence[ModelFit]) -> tuple[int, datetime]:
        """Record fits of the analytics models (Contract 8) together, in one transaction;
        returns the log position and the recorded time of the last one."""
        for _ in range(MAX_ATTEMPTS):
            models = self.analytics_models() or AnalyticsModels()
            for fit in fits:
                models.record_fit(fit)
            try:
                recordings = self.save(models)
            except IntegrityError:
                continue  # another fit was recorded meanwhile: chain onto it
            last = recordings[-1]
            fitted = cast(AnalyticsModels.Event, last.domain_event)
            return last.notification.id, fitted.timestamp
        raise ConcurrencyConflict(f"model fits not recorded after {MAX_ATTEMPTS} version conflicts")

    def close(self) -> None:
        if self.vault is not None:
            self.vault.close()
        super().close()

    def sweep(self, now: datetime, chunk: int = 500) -> SweepOutcome:
        """Dissolve every open relationship with no touchpoint within the inactivity window."""
        outcome = SweepOutcome()
        ids = list(self.relationship_ids())
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            outcome.examined += len(part)
            outcome.dissolved += self._sweep_part(part, now)
        return outcome

    def _sweep_part(self, ids: list[UUID], now: datetime) -> int:
        for _ in range(MAX_ATTEMPTS):
            dissolved: dict[UUID, Relationship] = {}
            followed = self._in_force()
            try:
                for aggregate_id in ids:
                    relationship: Relationship = self.repository.get(aggregate_id)
                    if relationship.dissolve_if_inactive(followed.policy, now):
                        dissolved[aggregate_id] = relationship
                self._save_with_tracking(dissolved.values(), None, BatchOutcome(), followed)
            except StreamMoved:
                self._forget_cached(dissolved)
                self._follow_adopted()
                continue
            except IntegrityError:
                # Another process wrote to one of them: sweep those again, freshly loaded.
                self._forget_cached(dissolved)
                continue
            except BaseException:
                self._forget_cached(dissolved)
                raise
            return len(dissolved)
        raise ConcurrencyConflict(f"sweep of {len(ids)} relationships kept conflicting")

    # The policy -----------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        """The adopted policy this process decides with (reading it is a first use, as
        ``follow_policy`` says)."""
        return self._in_force().policy

    def follow_policy(self) -> Policy:
        """Decide with the adopted policy from now on; every recording process calls
        this as it starts. A store without a policy adopts this process's policy file
        (or the built-in v1) first; a policy file other than the adopted policy is
        refused with ``PolicyMismatch``."""
        stream = self.policy_stream() or self._adopt_first()
        adopted, given = stream.adopted, self.policy_file
        if given is not None and (given.version, given.sha256) != (
            adopted.version,
            adopted.sha256,
        ):
            same_version = given.version == adopted.version
            raise PolicyMismatch(
                f"policy file {given.origin} is version {given.version}"
                + (" with other text" if same_version else "")
                + f", but version {adopted.version} is adopted (sha256 {adopted.sha256[:12]}…): "
                "unset LIFECYCLE_POLICY_FILE to follow the adopted policy, point it at the "
                "adopted text (`lifecycle policy show`), or adopt yours (`lifecycle policy adopt`)"
            )
        return self._follow(stream).policy

    def policy_stream(self) -> PolicyStream | None:
        """The policies adopted in this store (None before the first), read now."""
        try:
            stream: PolicyStream = self.repository.get(POLICY_STREAM_ID, version=LATEST)
        except AggregateNotFoundError:
            return None
        return stream

    def adopt_policy(
        self,
        document: PolicyText,
        *,
        actor: str,
        reason: str,
        at: datetime,
        batch_size: int = 500,
        advance: Callable[[int], None] | None = None,
    ) -> AdoptionOutcome:
        """Adopt ``document``, then re-evaluate every relationship that had started by
        then under it (``Relationship.reevaluate``), ``batch_size`` a transaction;
        ``advance`` is told how many each transaction re-evaluated. Adopting the adopted
        policy again records nothing and finishes (or finds finished) its
        re-evaluation."""
        stream = self.policy_stream() or self._adopt_first()
        recorded = stream.adopt(document, actor=actor, reason=reason, at=at)
        if recorded:
            try:
                self.save(stream)
            except IntegrityError:
                raise LifecycleError(
                    "another policy was adopted meanwhile: see `lifecycle policy history`"
                ) from None
        adoption = stream.adopted
        self._follow(stream)
        outcome = AdoptionOutcome(adoption.version, recorded, adoption.adopted_at)
        self._reevaluate_all(adoption, batch_size, outcome, advance)
        return outcome

    def _adopt_first(self) -> PolicyStream:
        document = self.policy_file or PolicyText.default()
        now = utc_now()
        stream = PolicyStream(started_at=now)
        stream.adopt(
            document, actor=FIRST_USE_ACTOR, reason=f"first use: {document.origin}", at=now
        )
        try:
            self.save(stream)
        except IntegrityError:
            # Another process adopted first: what it adopted is in force.
            adopted = self.policy_stream()
            assert adopted is not None
            return adopted
        _log().info("policy_adopted", version=document.version, sha256=document.sha256)
        return stream

    def _follow(self, stream: PolicyStream) -> _Followed:
        followed = self._followed
        if followed is None or followed.condition.version != stream.version:
            adopted = stream.adopted
            followed = _Followed(adopted.document().policy, StreamAt(stream.id, stream.version))
            self._followed = followed
            _log().info("policy_followed", version=adopted.version, sha256=adopted.sha256)
        return followed

    def _follow_adopted(self) -> None:
        """The policy stream moved under a write: follow what is adopted now."""
        stream = self.policy_stream()
        assert stream is not None  # it moved: it exists
        self._follow(stream)

    def _in_force(self) -> _Followed:
        if self._followed is None:
            self.follow_policy()
        assert self._followed is not None
        return self._followed

    def policy_adoptions(self) -> list[tuple[Adoption, int]]:
        """Every adoption recorded in this store, in order, with its log position."""
        stream = self.policy_stream()
        if stream is None:
            return []
        positions = {row[2]: row[0] for row in stream_log(self.recorder, POLICY_STREAM_ID)}
        return [(adoption, positions[adoption.stream_version]) for adoption in stream.adoptions]

    def _reevaluate_all(
        self,
        adoption: Adoption,
        batch_size: int,
        outcome: AdoptionOutcome,
        advance: Callable[[int], None] | None,
    ) -> None:
        name = ADOPTION_TRACKING.format(version=adoption.version)
        adopted_at_position = next(
            position
            for recorded, position in self.policy_adoptions()
            if recorded.stream_version == adoption.stream_version
        )
        outcome.resumed_after = self.recorder.max_tracking_id(name)
        start = (outcome.resumed_after or 0) + 1
        while True:
            page = self.recorder.select_notifications(
                start, batch_size, stop=adopted_at_position, topics=RELATIONSHIP_STARTED_TOPICS
            )
            if not page:
                return
            ids = [cast(UUID, notification.originator_id) for notification in page]
            moved = self._reevaluate_part(ids, adoption, Tracking(name, page[-1].id))
            if moved is None:
                outcome.superseded_by = self._in_force().policy.version
                return
            outcome.reevaluated += len(ids)
            outcome.moved += moved
            if advance is not None:
                advance(len(ids))
            start = page[-1].id + 1

    def _reevaluate_part(
        self, ids: list[UUID], adoption: Adoption, tracking: Tracking
    ) -> int | None:
        """Re-evaluate ``ids`` under ``adoption``'s policy and record how far it got, in
        one transaction: how many moved (None: a newer policy was adopted meanwhile)."""
        for _ in range(MAX_ATTEMPTS):
            moved: dict[UUID, Relationship] = {}
            followed = self._in_force()
            if followed.policy.version != adoption.version:
                return None
            try:
                for aggregate_id in ids:
                    relationship: Relationship = self.repository.get(aggregate_id)
                    if relationship.reevaluate(followed.policy, adoption.adopted_at):
                        moved[aggregate_id] = relationship
                self._save_with_tracking(moved.values(), tracking, BatchOutcome(), followed)
            except StreamMoved:
                self._forget_cached(moved)
                self._follow_adopted()
                continue
            except IntegrityError:
                # A relationship was written meanwhile (by a consumer, say), or another run
                # of this adoption did this part: do it again from what is stored.
                self._forget_cached(moved)
                if self.recorder.has_tracking_id(
                    tracking.application_name, tracking.notification_id
                ):
                    return 0
                continue
            except BaseException:
                self._forget_cached(moved)
                raise
            return len(moved)
        raise ConcurrencyConflict(f"re-evaluating {len(ids)} relationships kept conflicting")

    # Queries --------------------------------------------------------------------------

    def relationship(self, customer_id: str, version: int | None = None) -> Relationship:
        """The relationship as recorded now, or as it was at ``version``."""
        try:
            aggregate: Relationship = self.repository.get(
                relationship_id(customer_id), version=version or LATEST
            )
        except AggregateNotFoundError:
            where = f" at version {version}" if version else ""
            raise RelationshipNotFound(
                f"no relationship for customer {customer_id!r}{where}"
            ) from None
        return aggregate

    def analytics_models(self) -> AnalyticsModels | None:
        """The stream of model fits, or None before the first fit."""
        try:
            models: AnalyticsModels = self.repository.get(
                stream_id(ANALYTICS_STREAM), version=LATEST
            )
        except AggregateNotFoundError:
            return None
        return models

    def relationship_as_of(self, customer_id: str, recorded_at: datetime) -> Relationship:
        """The relationship as the engine knew it at ``recorded_at`` (recorded time)."""
        version = None
        for domain_event in self.history(customer_id):
            if domain_event.timestamp > recorded_at:
                break
            version = domain_event.originator_version
        if version is None:
            raise RelationshipNotFound(
                f"customer {customer_id!r} had no relationship recorded "
                f"at {recorded_at.isoformat()}"
            )
        return self.relationship(customer_id, version=version)

    def stage_history(self, customer_id: str) -> list[Relationship.Event]:
        """The relationship's start and every stage change, in log order."""
        return [
            domain_event
            for domain_event in self.history(customer_id)
            if isinstance(
                domain_event, Relationship.RelationshipStarted | Relationship.StageChanged
            )
        ]

    def stage_at(self, customer_id: str, at: datetime) -> StageInForce:
        """The stage in force at business time ``at`` (not what was recorded by then:
        that is ``relationship_as_of``)."""
        return stage_in_force(self.stage_history(customer_id), at)

    def history(self, customer_id: str) -> list[Aggregate.Event]:
        events = cast(list[Aggregate.Event], list(self.events.get(relationship_id(customer_id))))
        if not events:
            raise RelationshipNotFound(f"no relationship for customer {customer_id!r}")
        return events

    def relationship_ids(self, page: int = 1000) -> Iterator[UUID]:
        """Every relationship's id, in the order they started."""
        start = 1
        while True:
            notifications = self.recorder.select_notifications(
                start, page, topics=RELATIONSHIP_STARTED_TOPICS
            )
            for notification in notifications:
                yield cast(UUID, notification.originator_id)
            if len(notifications) < page:
                return
            start = notifications[-1].id + 1

    # Internals ------------------------------------------------------------------------

    def _stored_among(self, touchpoints: Sequence[Touchpoint]) -> set[UUID]:
        """Which of the batch's relationships are cached or exist in the store."""
        cache = self.repository.cache
        ids = {relationship_id(t.customer_id) for t in touchpoints}
        cached = {i for i in ids if _is_cached(cache, i)} if cache is not None else set()
        return cached | existing_originator_ids(self.recorder, ids - cached)

    def _recorded_among(
        self, touchpoints: Sequence[Touchpoint], stored: set[UUID]
    ) -> set[TouchpointKey]:
        """The keys of the batch recorded before (only a stored relationship has any)."""
        keys = []
        for touchpoint in touchpoints:
            aggregate_id = relationship_id(touchpoint.customer_id)
            if aggregate_id in stored:
                keys.append((aggregate_id, touchpoint.event_id))
        return recorded_touchpoints(self.recorder, keys)

    def _relationship_for(
        self, touchpoint: Touchpoint, loaded: dict[UUID, Relationship], stored: set[UUID]
    ) -> Relationship:
        aggregate_id = relationship_id(touchpoint.customer_id)
        relationship = loaded.get(aggregate_id)
        if relationship is None:
            if aggregate_id in stored:
                relationship = self.repository.get(aggregate_id)
            else:
                relationship = Relationship(
                    customer_id=touchpoint.customer_id,
                    started_at=touchpoint.occurred_at,
                    correlation_id=touchpoint.correlation_id,
                    producer=touchpoint.producer,
                )
            loaded[aggregate_id] = relationship
        return relationship

    def _snapshot(self, relationship: Relationship) -> StoredEvent:
        """A snapshot of the relationship as it is now, in the middle of a batch: encoded
        at once (later touchpoints of the batch change its state in place), stored once
        the batch is. The library would instead load the relationship again, from the
        store, for every snapshot: a relationship with a long batch of touchpoints has
        several a batch."""
        snapshot = Snapshot.take(relationship)
        return self.mapper.to_stored_event(snapshot)

    def _save_with_tracking(
        self,
        relationships: Iterable[Relationship],
        tracking: Tracking | None,
        outcome: BatchOutcome,
        decided_under: _Followed,
        touchpoint_keys: Sequence[TouchpointKey] = (),
        snapshots: Sequence[StoredEvent] | None = None,
    ) -> None:
        """Insert the relationships' new events, ``tracking`` and ``touchpoint_keys`` in
        one transaction, on condition that the policy they were ``decided_under`` is
        still the adopted one (``StreamMoved`` otherwise: see the module docstring); then
        store ``snapshots`` (None: the library takes its own)."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent(tracking=tracking)
        # What ProcessingEvent.collect_events() does, without its runtime Protocol checks,
        # which cost more than everything else here on a large batch.
        for relationship in relationships:
            for domain_event in relationship.collect_events():
                processing_event.events.append(domain_event)
                if isinstance(domain_event, Relationship.StageChanged):
                    outcome.stage_changes[domain_event.rule] += 1
            processing_event.aggregates[relationship.id] = relationship
        # Application._record() without EventStore.put()'s per-event Recording objects,
        # which only feed _notify(), a hook this application does not use.
        stored_events = [self.mapper.to_stored_event(e) for e in processing_event.events]
        lock_held: list[float] = []
        positions = self.recorder.insert_events(
            stored_events,
            tracking=tracking,
            touchpoint_keys=touchpoint_keys,
            lock_held=lock_held,
            **{CONDITION: decided_under.condition},
        )
        outcome.lock_seconds = sum(lock_held)
        if positions:
            outcome.position = positions[-1]
        cache = self.repository.cache
        if cache is not None:
            for aggregate_id, aggregate in processing_event.aggregates.items():
                cache.put(aggregate_id, aggregate)
        if snapshots is not None:
            if snapshots and self.snapshots is not None:
                self.snapshots.recorder.insert_events(snapshots)
            return
        # What Application._take_snapshots() does for aggregates of one class.
        interval = (self.snapshotting_intervals or {}).get(Relationship)
        if self.snapshots is not None and interval:
            for saved in processing_event.events:
                if saved.originator_version % interval == 0:
                    self.take_snapshot(saved.originator_id, version=saved.originator_version)

    def _forget_cached(self, relationships: dict[UUID, Relationship]) -> None:
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate_id in relationships:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)


def _pause_after_conflict(attempt: int) -> None:
    """A random pause, longer after each conflict: writers of the same relationships
    (a Kafka consumer, the HTTP API) that went on at their own pace would meet again,
    whereas one of them paused lets the other through first."""
    time.sleep(random.uniform(0, CONFLICT_PAUSE_SECONDS * 2**attempt))


def _is_cached(cache: Cache[UUID, Any], aggregate_id: UUID) -> bool:
    try:
        cache.get(aggregate_id)
    except KeyError:
        return False
    return True
