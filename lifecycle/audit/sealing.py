"""Sealing: extend the audit ledger over the events recorded since the last seal and
sign a checkpoint.

``seal`` reads the log after the last sealed position, copies each event's position and
hash into signed blocks, advances the global running hash, and records blocks,
checkpoint and tracking in one transaction. It refuses to extend a ledger whose last
checkpoint does not carry a valid signature. Two sealers racing: the second one's
transaction fails on the tracking row and writes nothing (``SealConflict``).

``PeriodicSealer`` is what ``lifecycle run`` uses: seal, sleep ``interval``, repeat until
stopped. A failed seal is logged and tried again at the next interval; it never stops
the process, because events keep their stream chains meanwhile and the next seal
covers them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from eventsourcing.persistence import IntegrityError, Tracking

from lifecycle.audit.chain import GLOBAL_GENESIS, advance, stored_chain_fields
from lifecycle.audit.ledger import (
    ENTRY,
    AuditKey,
    AuditLedger,
    Block,
    Checkpoint,
    block_payload,
    checkpoint_payload,
)
from lifecycle.domain.errors import LifecycleError
from lifecycle.persistence.recorders import read_log
from lifecycle.service.application import LifecycleApplication

log = structlog.get_logger(__name__)

BLOCK_SIZE = 4096
PAGE = 10_000
CHECKPOINT_PURPOSE = "checkpoint"
BLOCK_PURPOSE = "block"


class SealConflict(LifecycleError):
    code = "seal_conflict"


class LedgerInconsistent(LifecycleError):
    code = "ledger_inconsistent"


@dataclass(frozen=True)
class SealOutcome:
    checkpoint: Checkpoint | None
    """The checkpoint written now, or the latest one when there was nothing new."""
    sealed: int
    """Events sealed by this run."""


def seal(
    app: LifecycleApplication,
    ledger: AuditLedger,
    key: AuditKey,
    *,
    now: datetime | None = None,
    block_size: int = BLOCK_SIZE,
) -> SealOutcome:
    latest = ledger.latest_checkpoint()
    _check_extendable(app, ledger, key, latest)
    position = latest.position if latest is not None else 0
    head = bytes.fromhex(latest.head) if latest is not None else GLOBAL_GENESIS
    blocks: list[Block] = []
    entries: list[bytes] = []
    first = 0
    head_before = head
    sealed = 0
    start = position + 1
    while rows := read_log(app.recorder, start, PAGE):
        for row_position, originator_id, version, _topic, state in rows:
            event_hash = _stored_hash(state)
            if not entries:
                first, head_before = row_position, head
            entries.append(
                ENTRY.pack(row_position, event_hash, bytes.fromhex(originator_id), version)
            )
            head = advance(head, row_position, event_hash)
            position = row_position
            if len(entries) == block_size:
                blocks.append(_block(key, first, position, entries, head_before, head))
                entries = []
        sealed += len(rows)
        start = rows[-1][0] + 1
    if entries:
        blocks.append(_block(key, first, position, entries, head_before, head))
    if not blocks:
        return SealOutcome(latest, 0)
    sequence = latest.sequence + 1 if latest is not None else 1
    events = (latest.events if latest is not None else 0) + sealed
    sealed_at = (now or datetime.now(UTC)).astimezone(UTC)
    checkpoint = Checkpoint(
        sequence=sequence,
        position=position,
        head=head.hex(),
        events=events,
        sealed_at=sealed_at,
        signature=key.sign(
            CHECKPOINT_PURPOSE,
            checkpoint_payload(sequence, position, head.hex(), events, sealed_at),
        ),
    )
    try:
        ledger.record_seal(blocks, checkpoint, Tracking(app.name, position))
    except IntegrityError:
        raise SealConflict(
            "another sealer extended the ledger at the same time; nothing was written"
        ) from None
    return SealOutcome(checkpoint, sealed)


def _check_extendable(
    app: LifecycleApplication, ledger: AuditLedger, key: AuditKey, latest: Checkpoint | None
) -> None:
    tracked = ledger.max_tracking_id(app.name)
    expected = latest.position if latest is not None else None
    if tracked != expected:
        raise LedgerInconsistent(
            f"the audit ledger's sealed position ({tracked}) and its last checkpoint "
            f"({expected}) disagree: run `lifecycle audit verify`"
        )
    if latest is not None and not key.verifies(
        CHECKPOINT_PURPOSE, latest.payload(), latest.signature
    ):
        raise LedgerInconsistent(
            f"checkpoint #{latest.sequence} does not carry a valid signature (altered, or "
            "signed with another key): refusing to extend it; run `lifecycle audit verify`"
        )


def _stored_hash(state: bytes) -> bytes:
    """The hash an event carries; zeros if it carries none (verify reports that)."""
    value, _ = stored_chain_fields(state)
    try:
        return bytes.fromhex(value) if value is not None and len(value) == 64 else bytes(32)
    except ValueError:
        return bytes(32)


def _block(
    key: AuditKey, first: int, last: int, entries: list[bytes], head_before: bytes, head: bytes
) -> Block:
    packed = b"".join(entries)
    return Block(
        first_position=first,
        last_position=last,
        entries=packed,
        head_before=head_before,
        head_after=head,
        mac=key.sign(BLOCK_PURPOSE, block_payload(first, last, packed, head_before, head)),
    )


class PeriodicSealer:
    """Seals every ``interval`` seconds until ``stop()``; for ``lifecycle run``."""

    def __init__(
        self,
        app: LifecycleApplication,
        ledger: AuditLedger,
        key: AuditKey,
        interval: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = app
        self.ledger = ledger
        self.key = key
        self.interval = interval
        self.clock = clock
        self._stopped = threading.Event()

    def seal_once(self) -> SealOutcome | None:
        try:
            outcome = seal(self.app, self.ledger, self.key, now=self.clock())
        except Exception as error:  # logged and retried at the next interval
            log.error("audit_seal_failed", error=str(error), error_type=type(error).__name__)
            return None
        if outcome.sealed and outcome.checkpoint is not None:
            log.info(
                "audit_sealed",
                sequence=outcome.checkpoint.sequence,
                position=outcome.checkpoint.position,
                sealed=outcome.sealed,
                head=outcome.checkpoint.head,
            )
        return outcome

    def run(self) -> None:
        """Seal now and then every interval, until ``stop()`` (e.g. in a thread)."""
        while not self._stopped.is_set():
            self.seal_once()
            self._stopped.wait(self.interval)

    def stop(self) -> None:
        self._stopped.set()

    def close(self) -> None:
        """Stop, and close the ledger's connections."""
        self.stop()
        self.ledger.close()
