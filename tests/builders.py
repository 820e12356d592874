"""Builders of touchpoints and messages for tests: only what a test names differs."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from lifecycle.domain.policy import Policy
from lifecycle.domain.relationship import Relationship
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Channel, Kind

DAY_ZERO = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


def touchpoint(
    kind: str,
    day: float = 0,
    *,
    customer: str = "cust-1",
    event_id: str | None = None,
    channel: str = "web",
    **attributes: Any,
) -> Touchpoint:
    """A valid touchpoint ``day`` days after DAY_ZERO, with the attributes its kind needs."""
    defaults: dict[str, Any] = {
        "purchase": {"amount": "10.00", "currency": "EUR"},
        "survey": {"score": 8},
        "complaint": {"complaint_id": "cmp-1"},
        "complaint_resolved": {"complaint_id": "cmp-1"},
    }.get(kind, {})
    return Touchpoint(
        event_id=event_id or f"evt-{next(_ids)}",
        customer_id=customer,
        kind=Kind(kind),
        channel=Channel(channel),
        occurred_at=DAY_ZERO + timedelta(days=day),
        producer="test",
        attributes={**defaults, **attributes},
    )


def relationship_after(*touchpoints: Touchpoint, policy: Policy | None = None) -> Relationship:
    """A relationship begun by the first touchpoint, with all of them recorded under
    ``policy`` (the default policy unless named); its events are still pending."""
    policy = policy or Policy.default()
    relationship = Relationship(
        customer_id=touchpoints[0].customer_id, started_at=touchpoints[0].occurred_at
    )
    for each in touchpoints:
        relationship.record_touchpoint(each, policy)
    return relationship


def message(kind: str = "inquiry", **fields: Any) -> dict[str, Any]:
    """A valid Contract 1 message as a dict; ``fields`` override or add top-level fields."""
    base: dict[str, Any] = {
        "event_id": f"msg-{next(_ids)}",
        "customer_id": "cust-1",
        "kind": kind,
        "channel": "email",
        "occurred_at": "2024-03-01T10:00:00+01:00",
        "source": "helpdesk",
    }
    if kind == "purchase":
        base["attributes"] = {"amount": "19.99"}
    return {**base, **fields}


def line(**fields: Any) -> bytes:
    return json.dumps(message(**fields)).encode()


def message_v2(kind: str = "inquiry", **fields: Any) -> dict[str, Any]:
    """A valid version 2 message as a dict (Contract 6); ``fields`` override or add."""
    base = {k: v for k, v in message(kind).items() if k not in ("source", "attributes")}
    base.update(producer="helpdesk", schema_version=2)
    if kind == "purchase":
        base["attributes"] = {"total": {"amount": "19.99", "currency": "EUR"}}
    return {**base, **fields}
