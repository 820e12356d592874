"""The touchpoint as the domain sees it: one validated upstream event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lifecycle.domain.vocabulary import Channel, Kind


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """One customer touchpoint, already validated against Contract 1 and in its current
    form, whichever version of the message it arrived as (``schema_version``).

    ``attributes`` holds JSON values only (a purchase amount is a decimal string),
    so a touchpoint is recorded exactly as it arrived.
    """

    event_id: str
    customer_id: str
    kind: Kind
    channel: Channel
    occurred_at: datetime
    producer: str
    """The upstream system that sent it (``source`` in version 1 of the message)."""
    attributes: dict[str, Any] = field(default_factory=dict)
    personal: dict[str, str] | None = None
    schema_version: int = 1
    correlation_id: str | None = None
    """The upstream's trace or workflow id, kept on every event the touchpoint causes."""
