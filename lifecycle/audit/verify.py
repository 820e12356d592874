"""Verification: recompute every stream chain and the global chain, check every
signature, and name the first event that does not hold.

One pass over the log in position order (pages of plain rows, no domain types
revived) checks, for each event:

1. its content still hashes to the hash it carries (bytes edited);
2. it follows its relationship's previous event: next version, ``previous_hash`` equal
   to that event's hash (events deleted, inserted or reordered within a stream);
3. against the sealed ledger: the event sealed at this position is this one — same
   relationship, version and hash (a chain rewritten after a seal, events moved
   between positions); a sealed event missing from the log (deleted); an event at a
   sealed position that was never sealed (inserted);
4. the global running hash, recomputed from the log, equals every signed block's head
   and every signed checkpoint's head (the ledger itself rewritten), and the head of
   every checkpoint kept outside the database that the caller passes in (the ledger
   removed altogether).

Events after the last checkpoint are covered by checks 1 and 2 only, until the next seal.
The first failure raises ``TamperingDetected`` naming customer, version, position and
what differs; a clean store returns counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from hashlib import sha256
from typing import NoReturn
from uuid import UUID

import orjson

from lifecycle.audit.chain import GLOBAL_GENESIS, HEAD_INPUT, Checked, check_rows
from lifecycle.audit.ledger import AuditKey, AuditKeyMissing, AuditLedger, Block, Checkpoint
from lifecycle.audit.sealing import BLOCK_PURPOSE, CHECKPOINT_PURPOSE
from lifecycle.domain.errors import RelationshipNotFound
from lifecycle.domain.hashchain import GENESIS_HASH
from lifecycle.domain.relationship import relationship_id
from lifecycle.persistence.recorders import LogRow, read_log, stream_log
from lifecycle.service.application import LifecycleApplication

PAGE = 20_000


@dataclass(frozen=True)
class Divergence:
    """The first event found not to hold, and what differs."""

    problem: str
    position: int | None = None
    customer_id: str | None = None
    relationship_id: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        where = []
        if self.customer_id is not None:
            where.append(f"customer {self.customer_id}")
        elif self.relationship_id is not None:
            where.append(f"relationship {self.relationship_id}")
        if self.version is not None:
            where.append(f"version {self.version}")
        if self.position is not None:
            where.append(f"position {self.position}")
        return f"{', '.join(where)}: {self.problem}" if where else self.problem


class TamperingDetected(Exception):
    def __init__(self, divergence: Divergence) -> None:
        super().__init__(str(divergence))
        self.divergence = divergence


@dataclass(frozen=True)
class VerifyReport:
    events: int
    streams: int
    checkpoints: int
    sealed_events: int
    unsealed_events: int
    sealed_through: int | None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


@dataclass(slots=True)
class _Stream:
    version: int
    hash: str
    customer_id: str | None
    id_bytes: bytes


def verify_store(
    app: LifecycleApplication,
    ledger: AuditLedger,
    key: AuditKey | None,
    *,
    anchors: Sequence[Checkpoint] = (),
    on_progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Verify the whole log, the ledger and every checkpoint.

    ``anchors`` are checkpoints kept outside the database (what ``audit seal`` printed):
    the log itself must hash to each one's head, whatever became of the ledger.
    """
    checkpoints = _checked_checkpoints(app, ledger, key)
    anchored = _checked_anchors(anchors, key)
    sealed_through = checkpoints[-1].position if checkpoints else None
    at_checkpoint = {c.position: c for c in checkpoints}
    streams: dict[str, _Stream] = {}
    sealed = _SealedEntries(ledger, key)
    head = GLOBAL_GENESIS
    events = sealed_events = 0
    start: int | None = None  # None: from the very first row, whatever its position
    # The loop below runs once per event of the log: the common case is inline, each
    # failure is diagnosed (and named) by a helper that raises.
    while rows := read_log(app.recorder, start, PAGE):
        for row, (stored_hash, previous_hash, matches) in zip(rows, check_rows(rows), strict=True):
            position, originator_id, version = row[0], row[1], row[2]
            entry = sealed.next_entry
            if entry is not None and entry[0] < position:
                sealed.missing(streams)  # a sealed event the log skipped: deleted or moved
            stream = streams.get(originator_id)
            if stream is None:
                stream = _Stream(
                    0, GENESIS_HASH, _customer_of(row[4]), bytes.fromhex(originator_id)
                )
                streams[originator_id] = stream
            if not matches or version != stream.version + 1 or previous_hash != stream.hash:
                _diagnose_link(row, (stored_hash, previous_hash, matches), stream)
            stream.version = version
            stream.hash = stored_hash or ""
            event_hash = bytes.fromhex(stream.hash)
            head = sha256(HEAD_INPUT.pack(head, position, event_hash)).digest()
            events += 1
            if anchored and position in anchored:
                _check_anchor(anchored.pop(position), head, events, row, stream)
            if entry is not None and entry[0] == position:
                if entry[2] != stream.id_bytes or entry[3] != version or entry[1] != event_hash:
                    _compare_sealed(row, entry, stream)
                sealed_events += 1
                block_head = sealed.advance()
                if block_head is not None:
                    _check_heads(head, block_head, at_checkpoint.get(position), row, stream)
            elif sealed_through is not None and position <= sealed_through:
                _fail(
                    "this event was not in the log when it was sealed (inserted afterwards)",
                    row,
                    stream,
                )
        if on_progress is not None:
            on_progress(len(rows))
        start = rows[-1][0] + 1
    if sealed.next_entry is not None:
        sealed.missing(streams)  # sealed after the log's last event: deleted
    for anchor in anchored.values():
        raise TamperingDetected(
            Divergence(
                f"the log has no event at position {anchor.position}, where checkpoint "
                f"#{anchor.sequence} (kept outside the database) ends: events were deleted"
            )
        )
    if sealed_events and checkpoints and checkpoints[-1].events != sealed_events:
        raise TamperingDetected(
            Divergence(
                f"checkpoint #{checkpoints[-1].sequence} sealed {checkpoints[-1].events} events "
                f"but the log holds {sealed_events} of them"
            )
        )
    return VerifyReport(
        events=events,
        streams=len(streams),
        checkpoints=len(checkpoints),
        sealed_events=sealed_events,
        unsealed_events=events - sealed_events,
        sealed_through=sealed_through,
    )


def verify_customer(
    app: LifecycleApplication, ledger: AuditLedger, key: AuditKey | None, customer_id: str
) -> VerifyReport:
    """Verify one relationship's chain against its own hashes and the sealed ledger."""
    checkpoints = _checked_checkpoints(app, ledger, key)
    sealed_through = checkpoints[-1].position if checkpoints else None
    rid = relationship_id(customer_id)
    rows = stream_log(app.recorder, rid)
    sealed: dict[int, tuple[int, bytes]] = {}  # version -> (position, hash)
    for block in ledger.all_blocks():
        _check_block_mac(block, key)
        for position, event_hash, entry_rid, version in block.unpacked():
            if entry_rid == rid.bytes:
                sealed[version] = (position, event_hash)
    if not rows and not sealed:
        raise RelationshipNotFound(f"no relationship for customer {customer_id!r}")
    streams: dict[str, _Stream] = {}
    for row, link in zip(rows, check_rows(rows), strict=True):
        position, _rid, version, _topic, _state = row
        stream = _check_link(row, link, streams)
        expected = sealed.pop(version, None)
        if expected is not None:
            _compare_sealed(row, (expected[0], expected[1], rid.bytes, version), stream)
        elif sealed_through is not None and position <= sealed_through:
            _fail(
                "this event was not in the log when it was sealed (inserted afterwards)",
                row,
                stream,
            )
    if sealed:
        version = min(sealed)
        raise TamperingDetected(
            Divergence(
                "sealed, but missing from the log (deleted)",
                position=sealed[version][0],
                customer_id=customer_id,
                relationship_id=str(rid),
                version=version,
            )
        )
    sealed_events = sum(1 for r in rows if sealed_through is not None and r[0] <= sealed_through)
    return VerifyReport(
        events=len(rows),
        streams=1 if rows else 0,
        checkpoints=len(checkpoints),
        sealed_events=sealed_events,
        unsealed_events=len(rows) - sealed_events,
        sealed_through=sealed_through,
    )


# The checks ---------------------------------------------------------------------------


def _check_signature(checkpoint: Checkpoint, key: AuditKey | None, forged: str) -> None:
    """Raise ``TamperingDetected`` saying ``forged`` unless ``key`` signed ``checkpoint``
    (``AuditKeyMissing`` when there is no key to tell)."""
    if key is None:
        raise AuditKeyMissing(
            "LIFECYCLE_AUDIT_HMAC_KEY is not set: it is needed to check the checkpoints' signatures"
        )
    if not key.verifies(CHECKPOINT_PURPOSE, checkpoint.payload(), checkpoint.signature):
        raise TamperingDetected(Divergence(forged))


def _checked_anchors(anchors: Sequence[Checkpoint], key: AuditKey | None) -> dict[int, Checkpoint]:
    for anchor in anchors:
        _check_signature(
            anchor, key, f"the given checkpoint #{anchor.sequence} does not carry a valid signature"
        )
    return {anchor.position: anchor for anchor in anchors}


def _check_anchor(
    anchor: Checkpoint, head: bytes, events: int, row: LogRow, stream: _Stream
) -> None:
    if anchor.head != head.hex() or anchor.events != events:
        _fail(
            f"the log up to here does not hash to the head of checkpoint #{anchor.sequence} "
            "(kept outside the database): events up to here were changed, added or removed",
            row,
            stream,
        )


def _checked_checkpoints(
    app: LifecycleApplication, ledger: AuditLedger, key: AuditKey | None
) -> list[Checkpoint]:
    checkpoints = ledger.checkpoints()
    previous: Checkpoint | None = None
    for checkpoint in checkpoints:
        _check_signature(
            checkpoint,
            key,
            f"checkpoint #{checkpoint.sequence} (position {checkpoint.position}) does not "
            "carry a valid signature: altered, or signed with another key",
        )
        expected_sequence = previous.sequence + 1 if previous is not None else 1
        if checkpoint.sequence != expected_sequence or (
            previous is not None and checkpoint.position <= previous.position
        ):
            raise TamperingDetected(
                Divergence(
                    f"checkpoint #{expected_sequence} is missing or out of order "
                    f"(found #{checkpoint.sequence} at position {checkpoint.position})"
                )
            )
        previous = checkpoint
    tracked = ledger.max_tracking_id(app.name)
    if tracked != (previous.position if previous is not None else None):
        raise TamperingDetected(
            Divergence(
                f"the ledger's sealed position ({tracked}) is not its last checkpoint's "
                f"({previous.position if previous is not None else None})"
            )
        )
    return checkpoints


def _check_link(row: LogRow, link: Checked, streams: dict[str, _Stream]) -> _Stream:
    originator_id = row[1]
    stream = streams.get(originator_id)
    if stream is None:
        stream = _new_stream(row)
        streams[originator_id] = stream
    _diagnose_link(row, link, stream)
    stream.version = row[2]
    stream.hash = link[0] or ""
    return stream


def _new_stream(row: LogRow) -> _Stream:
    return _Stream(0, GENESIS_HASH, _customer_of(row[4]), bytes.fromhex(row[1]))


def _diagnose_link(row: LogRow, link: Checked, stream: _Stream) -> None:
    """Raise, naming the event, if it does not hold or does not follow its stream."""
    version = row[2]
    stored_hash, previous_hash, content_matches = link
    if stored_hash is None:
        _fail("the event carries no hash (written outside the application)", row, stream)
    if not content_matches:
        _fail("its content does not match its hash (the stored event was edited)", row, stream)
    if version != stream.version + 1:
        _fail(
            f"follows version {stream.version} in the log (expected version {stream.version + 1}): "
            "events of this relationship were deleted, inserted or reordered",
            row,
            stream,
        )
    if previous_hash != stream.hash:
        _fail(
            "its previous_hash is not the hash of the relationship's previous event "
            "(an event before it was replaced)",
            row,
            stream,
        )


def _customer_of(state: bytes) -> str | None:
    """The customer an event names (read once per relationship, to name divergences)."""
    try:
        customer_id = orjson.loads(state).get("customer_id")
    except orjson.JSONDecodeError:
        return None
    return customer_id if isinstance(customer_id, str) else None


def _compare_sealed(row: LogRow, entry: tuple[int, bytes, bytes, int], stream: _Stream) -> None:
    version = row[2]
    _, sealed_hash, sealed_rid, sealed_version = entry
    if sealed_rid != stream.id_bytes or sealed_version != version:
        _fail(
            f"the event sealed at this position was relationship {UUID(bytes=sealed_rid)} "
            f"version {sealed_version} (events were moved or reordered)",
            row,
            stream,
        )
    if sealed_hash.hex() != stream.hash:
        _fail(
            f"its hash {stream.hash[:16]}… differs from the hash sealed for it "
            f"{sealed_hash.hex()[:16]}… (the chain was rewritten after the seal)",
            row,
            stream,
        )


def _check_heads(
    head: bytes, block_head: bytes, checkpoint: Checkpoint | None, row: LogRow, stream: _Stream
) -> None:
    """At the end of a sealed block (and of a seal): the recomputed global head must be
    the signed one."""
    if block_head != head:
        _fail(
            "the log up to here does not hash to the signed head of its ledger block", row, stream
        )
    if checkpoint is not None and checkpoint.head != head.hex():
        _fail(
            f"the log up to here does not hash to checkpoint #{checkpoint.sequence}'s signed head",
            row,
            stream,
        )


def _check_block_mac(block: Block, key: AuditKey | None) -> None:
    if key is None or not key.verifies(BLOCK_PURPOSE, block.payload(), block.mac):
        raise TamperingDetected(
            Divergence(
                f"the sealed ledger block of positions {block.first_position} to "
                f"{block.last_position} does not carry a valid signature (the ledger was altered)"
            )
        )


def _fail(problem: str, row: LogRow, stream: _Stream | None) -> NoReturn:
    position, originator_id, version, _topic, _state = row
    raise TamperingDetected(
        Divergence(
            problem,
            position=position,
            customer_id=stream.customer_id if stream is not None else None,
            relationship_id=originator_id,
            version=version,
        )
    )


class _SealedEntries:
    """The ledger's entries in position order, merged against the log as it is read:
    ``next_entry`` is the next sealed event expected."""

    def __init__(self, ledger: AuditLedger, key: AuditKey | None) -> None:
        self._key = key
        self._blocks = ledger.all_blocks()
        self._entries: Iterator[tuple[int, bytes, bytes, int]] = iter(())
        self._previous_head = GLOBAL_GENESIS
        self._block: Block | None = None
        self.next_entry: tuple[int, bytes, bytes, int] | None = None
        self._load_next()

    def advance(self) -> bytes | None:
        """Past ``next_entry``; the signed head of its block if it ended one."""
        entry = self.next_entry
        block = self._block
        assert entry is not None and block is not None
        self._load_next()
        return block.head_after if entry[0] == block.last_position else None

    def _load_next(self) -> None:
        for entry in self._entries:
            self.next_entry = entry
            return
        block = next(self._blocks, None)
        if block is None:
            self.next_entry = None
            return
        _check_block_mac(block, self._key)
        if block.head_before != self._previous_head:
            raise TamperingDetected(
                Divergence(
                    f"sealed ledger blocks before position {block.first_position} are missing "
                    "(the ledger was altered)"
                )
            )
        self._previous_head = block.head_after
        self._block = block
        self._entries = block.unpacked()
        self.next_entry = next(self._entries, None)

    def missing(self, streams: dict[str, _Stream]) -> NoReturn:
        """Raise for ``next_entry``: sealed, and not where the log is now."""
        entry = self.next_entry
        assert entry is not None
        stream = streams.get(entry[2].hex())
        raise TamperingDetected(
            Divergence(
                "sealed, but missing from the log (deleted or moved)",
                position=entry[0],
                customer_id=stream.customer_id if stream is not None else None,
                relationship_id=str(UUID(bytes=entry[2])),
                version=entry[3],
            )
        )
