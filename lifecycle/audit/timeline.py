"""A customer's timeline as an auditor reads it in the console: every event of the
relationship (``history``) with, for each, whether the log is sealed up to it (its
position at or before the latest checkpoint) and whether it is verified (its link of the
chain and, where sealed, the ledger's entry for it hold: ``verify.verify_customer``).

Verification stops at the first event that does not hold: the events before it are
verified, that one and those after it are not, and the timeline names the problem. The
seal cannot be checked without the audit key once the log has been sealed; then nothing
is shown as verified, and the timeline says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from lifecycle.audit.history import audited_history
from lifecycle.audit.ledger import AuditKey, AuditKeyMissing, AuditLedger
from lifecycle.audit.verify import TamperingDetected, verify_customer
from lifecycle.domain.outbound import RelationshipEvent
from lifecycle.service.application import LifecycleApplication


@dataclass(frozen=True)
class TimelineEntry:
    event: RelationshipEvent
    sealed: bool
    verified: bool


@dataclass(frozen=True)
class Timeline:
    entries: list[TimelineEntry]
    sealed_through: int | None
    """The last position the latest checkpoint seals (None: the log was never sealed)."""
    checked: bool
    """Whether verification ran (it needs the audit key once the log was sealed)."""
    problem: str | None
    """What verification found, naming the first event that does not hold; or why it
    could not run."""


def customer_timeline(
    app: LifecycleApplication,
    ledger: AuditLedger,
    key: AuditKey | None,
    customer_id: str,
    *,
    reveal: bool,
) -> Timeline:
    """The customer's events, oldest first, each sealed or not and verified or not;
    personal data revealed when ``reveal`` (else shown as encrypted or erased)."""
    events = audited_history(app, customer_id, reveal=reveal)
    checkpoint = ledger.latest_checkpoint()
    sealed_through = checkpoint.position if checkpoint is not None else None
    verified_before: int | None = None  # the first version that does not hold
    checked, problem = True, None
    try:
        verify_customer(app, ledger, key, customer_id)
    except TamperingDetected as tampering:
        problem = str(tampering)
        verified_before = tampering.divergence.version or 0
    except AuditKeyMissing as missing:
        checked, problem = False, str(missing)
    return Timeline(
        entries=[
            TimelineEntry(
                event,
                sealed=sealed_through is not None
                and event.position is not None
                and event.position <= sealed_through,
                verified=checked and (verified_before is None or event.version < verified_before),
            )
            for event in events
        ],
        sealed_through=sealed_through,
        checked=checked,
        problem=problem,
    )
