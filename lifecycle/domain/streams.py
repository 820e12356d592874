"""Hash-chained streams: the base of every aggregate whose events are links of a chain.

A relationship is one such stream; so are the streams that are not relationships (the
adopted policy's, the analytics models'), which are chained, sealed, verified and
exported alike. Each event carries ``previous_hash`` and ``hash``
(``lifecycle.domain.hashchain``), computed here as the event is triggered, so every
path that records events chains them alike.

What a hash covers is the event's state as the store keeps it. The library's mapper adds
``class_version`` to the stored state of an event whose class is at version 2 or later
(and takes it out again, upcasting, when it reads the event back); so the state hashed
here holds ``class_version`` by the same rule, and a new event's class version is part
of what its hash covers. Events stored before a class gained a version hold none, and
verify as they were written.

Overrides of the library's aggregate hooks (``_create``, ``trigger_event``) live here;
``lifecycle.persistence.library`` names them and its contract tests pin them. How an
event is then made, applied and kept pending is the library's ``trigger_event`` unless
another ``EventTrigger`` is installed (the application installs the door's faster one,
as it installs a faster hasher).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, CanInitAggregate

from lifecycle.domain.hashchain import GENESIS_HASH, event_hash, link_hash

# Fixed forever: the ids of streams that are not relationships are
# uuid5(STREAM_NAMESPACE, stream name).
STREAM_NAMESPACE = UUID("9a3f0c2e-51b4-4f6e-8f2d-4c7a1e0b6d93")

CLASS_VERSION = "class_version"


CHAINED_EVENT_CLASSES: dict[str, type[Any]] = {}
"""Every chained event class by name, whichever stream it belongs to: the audit rebuilds
exported events by name (names are unique across streams)."""


def stream_id(name: str) -> UUID:
    """The id of a stream that is not a relationship, from its fixed name."""
    return uuid5(STREAM_NAMESPACE, name)


def hashed_state(event_class: type[Any], state: Mapping[str, Any]) -> Mapping[str, Any]:
    """The state of an event as the store will keep it, for its hash: with
    ``class_version`` when the class is at version 2 or later (the mapper's rule)."""
    class_version = getattr(event_class, CLASS_VERSION, 1)
    if class_version > 1:
        return {**state, CLASS_VERSION: class_version}
    return state


class ChainedAggregate(Aggregate):
    """An aggregate whose events form a hash chain (see the module docstring)."""

    last_hash: str
    """The hash of the latest event: the next event's ``previous_hash``."""

    class Event(Aggregate.Event):
        """Base of every chained event: each one is a link of its stream's hash chain."""

        previous_hash: str
        hash: str

        def __init_subclass__(cls, **kwargs: Any) -> None:
            super().__init_subclass__(**kwargs)
            CHAINED_EVENT_CLASSES[cls.__name__] = cls

        def mutate(self, aggregate: Any) -> Any:
            mutated = super().mutate(aggregate)
            assert mutated is not None
            mutated.last_hash = self.hash
            return mutated

    @classmethod
    def _create(
        cls,
        event_class: type[CanInitAggregate[UUID]],
        *,
        id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """The library's ``_create``, with the first link of the chain."""
        originator_id = id or cls.create_id(**kwargs)
        kwargs["timestamp"] = kwargs.get("timestamp") or event_class.create_timestamp()
        kwargs["previous_hash"] = GENESIS_HASH
        # The library adds originator_topic to a "created" event's state: hash it too.
        state = {**kwargs, "originator_topic": f"{cls.__module__}:{cls.__qualname__}"}
        kwargs["hash"] = event_hash(
            event_class.__name__,
            originator_id,
            cls.INITIAL_VERSION,
            hashed_state(event_class, state),
        )
        return super()._create(event_class, id=originator_id, **kwargs)

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        """The library's ``trigger_event``, chaining the new event to the last one (made,
        applied and kept pending by the installed ``EventTrigger``)."""
        kwargs["timestamp"] = kwargs.get("timestamp") or event_class.create_timestamp()
        previous_hash = self.last_hash
        kwargs["hash"] = link_hash(
            previous_hash,
            event_class.__name__,
            self.id,
            self.version + 1,
            hashed_state(event_class, kwargs),
        )
        kwargs["previous_hash"] = previous_hash
        _trigger(self, event_class, kwargs)


EventTrigger = Callable[[Aggregate, type[Any], dict[str, Any]], None]
"""(aggregate, event class, the event's fields but its originator id and version): make
the event, apply it to the aggregate and keep it pending, as the library's
``Aggregate.trigger_event`` does."""


def library_trigger(aggregate: Aggregate, event_class: type[Any], fields: dict[str, Any]) -> None:
    Aggregate.trigger_event(aggregate, event_class, **fields)


_trigger: EventTrigger = library_trigger


def install_event_trigger(trigger: EventTrigger) -> None:
    """Make events another way than the library's ``trigger_event`` (faster), provided
    the events and the aggregate come out the same."""
    global _trigger
    _trigger = trigger
