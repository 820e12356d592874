"""The policy in the log: one stream whose ``PolicyAdopted`` events say which version of
the lifecycle policy was in force from when, with its exact text and SHA-256, who
adopted it and why, so that auditors see which rules decided every stage change.

The stream is chained, sealed, verified and exported like a relationship (it is a
``ChainedAggregate`` with the fixed id ``stream_id("policy")``) and never relayed.
Versions only increase, a version's text never changes, and adopting the adopted policy
again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from lifecycle.domain.errors import PolicyNotAdoptable
from lifecycle.domain.policy import PolicyText
from lifecycle.domain.streams import ChainedAggregate, stream_id

POLICY_STREAM_ID = stream_id("policy")


@dataclass(frozen=True)
class Adoption:
    """One adoption of a policy version, as its ``PolicyAdopted`` event records it."""

    version: int
    text: str
    sha256: str
    actor: str
    reason: str
    adopted_at: datetime
    stream_version: int
    """The version of the policy stream its event is (to find its log position)."""

    def document(self) -> PolicyText:
        return PolicyText.parse(self.text, f"adopted policy version {self.version}")


class PolicyStream(ChainedAggregate):
    """Every policy adopted in this store, in order."""

    class Event(ChainedAggregate.Event):
        """Base of every event of the policy stream."""

    class PolicyStreamStarted(Event, Aggregate.Created):
        started_at: datetime

    class PolicyAdopted(Event):
        version: int
        text: str
        sha256: str
        actor: str
        reason: str
        adopted_at: datetime

        def apply(self, aggregate: PolicyStream) -> None:
            aggregate.adoptions.append(
                Adoption(
                    self.version,
                    self.text,
                    self.sha256,
                    self.actor,
                    self.reason,
                    self.adopted_at,
                    self.originator_version,
                )
            )

    @staticmethod
    def create_id(**_: Any) -> UUID:
        return POLICY_STREAM_ID

    @event(PolicyStreamStarted)
    def __init__(self, started_at: datetime) -> None:
        self.adoptions: list[Adoption] = []

    @property
    def adopted(self) -> Adoption:
        """The policy in force: the latest adoption."""
        return self.adoptions[-1]

    def adoption(self, version: int) -> Adoption | None:
        return next((a for a in self.adoptions if a.version == version), None)

    def adopt(self, document: PolicyText, *, actor: str, reason: str, at: datetime) -> bool:
        """Adopt ``document``; False, changing nothing, when it is the adopted policy."""
        if self.adoptions and (document.version, document.sha256) == (
            self.adopted.version,
            self.adopted.sha256,
        ):
            return False
        self.check_adoptable(document)
        self.trigger_event(
            self.PolicyAdopted,
            version=document.version,
            text=document.text,
            sha256=document.sha256,
            actor=actor,
            reason=reason,
            adopted_at=at,
        )
        return True

    def check_adoptable(self, document: PolicyText) -> None:
        earlier = self.adoption(document.version)
        if earlier is not None and earlier.sha256 != document.sha256:
            raise PolicyNotAdoptable(
                f"{document.origin}: version {document.version} was adopted "
                f"{earlier.adopted_at.isoformat(timespec='seconds')} with other text "
                f"(sha256 {earlier.sha256[:12]}…); a changed policy needs a new version"
            )
        if self.adoptions and document.version <= self.adopted.version:
            raise PolicyNotAdoptable(
                f"{document.origin}: version {document.version} is not newer than the "
                f"adopted version {self.adopted.version}; versions only increase"
            )
