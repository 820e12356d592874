"""The touchpoint as the domain sees it: one validated upstream event."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
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

    def __reduce__(self) -> tuple[type[Touchpoint], tuple[Any, ...]]:
        """Pickled field by field (the import's validating worker sends touchpoints
        back): the slots dataclass's own pickled state looks its fields up again for
        every object, which costs a third of validating the line."""
        return (Touchpoint, tuple(getattr(self, name) for name in _FIELDS))


_FIELDS = tuple(each.name for each in fields(Touchpoint))
