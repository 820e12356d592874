"""Contracts with the private APIs of the libraries: those of eventsourcing that
``lifecycle/persistence/library.py`` uses (and the aggregate hooks ``Relationship``
overrides), those of kafka-python that ``consumers/kafka_internals.py`` uses.

Each test fails, naming what changed and what to re-check, when an upgrade changes one.
What needs a real store or broker: ``tests/integration/test_library_contracts.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import get_topic
from kafka import KafkaConsumer
from kafka.cluster import ClusterMetadata

from lifecycle.domain.hashchain import GENESIS_HASH, reference_event_hash
from lifecycle.domain.policy import Policy
from lifecycle.domain.relationship import Relationship
from lifecycle.domain.streams import hashed_state
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Channel, Kind
from lifecycle.persistence import library
from tests.contracts import EVENTSOURCING, KAFKA

LIBRARY = "lifecycle/persistence/library.py"
KAFKA_INTERNALS = "consumers/kafka_internals.py"
DAY_ZERO = datetime(2024, 1, 1, tzinfo=UTC)


def shape(function: Callable[..., Any]) -> str:
    """A signature without annotations and defaults: the names and kinds relied on."""
    signature = inspect.signature(function)
    parameters = [
        p.replace(annotation=inspect.Parameter.empty, default=inspect.Parameter.empty)
        for name, p in signature.parameters.items()
        if name != "self"
    ]
    return str(signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty))


def stored_state(domain_event: Any) -> dict[str, Any]:
    """An event's state as the store keeps it (id and version are columns of their own;
    the class version is in it from version 2 on, as the library's mapper adds it)."""
    state = {
        key: value
        for key, value in vars(domain_event).items()
        if key not in ("originator_id", "originator_version")
    }
    return dict(hashed_state(type(domain_event), state))


def hash_recomputed(domain_event: Any) -> str:
    return reference_event_hash(
        type(domain_event).__name__,
        domain_event.originator_id,
        domain_event.originator_version,
        stored_state(domain_event),
    )


# eventsourcing: recording positions and events ----------------------------------------


@pytest.mark.parametrize(
    ("recorder_class", "expected"),
    [(SQLiteTrackingRecorder, "(c, tracking)"), (PostgresTrackingRecorder, "(curs, tracking)")],
)
def test_a_tracking_recorder_records_a_position_in_a_transaction_already_open(
    recorder_class: type[Any], expected: str
) -> None:
    assert shape(recorder_class._insert_tracking) == expected, (
        f"{EVENTSOURCING}: {recorder_class.__name__}._insert_tracking{expected} changed; "
        f"{LIBRARY} (insert_tracking) relies on it to record a position in the caller's "
        "transaction, with the rows it covers: re-check the SQLite process recorder, the "
        "views' write_page and swap_in_next, and the audit ledger's record_seal"
    )


@pytest.mark.parametrize(
    ("step", "expected"),
    [("_lock_table", "(curs)"), ("_notify_channel", "(curs)")],
)
def test_the_postgres_recorder_locks_the_log_and_notifies_on_one_cursor(
    step: str, expected: str
) -> None:
    assert shape(getattr(PostgresApplicationRecorder, step)) == expected, (
        f"{EVENTSOURCING}: PostgresApplicationRecorder.{step}{expected} changed; {LIBRARY} "
        "(lock_log) takes the table lock and sends the NOTIFY of the library's "
        "insert_events before the PostgreSQL process recorder COPYs a batch: re-check it "
        "against the library's insert_events"
    )


def test_notifications_are_frozen_dataclasses_of_exactly_five_fields() -> None:
    fields = [field.name for field in dataclasses.fields(Notification)]
    frozen = Notification.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert (fields, frozen, hasattr(Notification, "__slots__")) == (
        ["originator_id", "originator_version", "topic", "state", "id"],
        True,
        False,
    ), (
        f"{EVENTSOURCING}: Notification changed (fields {fields}, frozen {frozen}); "
        f"{LIBRARY} (notifications) sets its instance __dict__ to exactly these five "
        "fields, bypassing __init__: re-check it, or make notifications with the constructor"
    )


def test_notifications_made_without_init_equal_those_of_the_constructor() -> None:
    originator_id = uuid4()

    made = library.notifications([(7, originator_id.hex, 3, "a:B", b"{}")], UUID)

    assert made == [
        Notification(
            id=7, originator_id=originator_id, originator_version=3, topic="a:B", state=b"{}"
        )
    ], (
        f"{EVENTSOURCING}: a Notification made by {LIBRARY} (notifications) without its "
        "__init__ no longer equals one made by the constructor: re-check what __init__ sets"
    )


# eventsourcing: the aggregate hooks the domain overrides -------------------------------


def test_the_library_creates_an_aggregate_through_its_private_create() -> None:
    assert shape(Aggregate._create) == "(event_class, *, id, **kwargs)", (
        f"{EVENTSOURCING}: Aggregate._create(event_class, *, id, **kwargs) changed; "
        "lifecycle/domain/relationship.py overrides it to add the first link of the hash "
        f"chain (listed in {LIBRARY}): re-check ChainedAggregate._create"
    )


def test_a_new_relationship_s_first_event_is_the_first_link_of_its_chain() -> None:
    started = Relationship(customer_id="c-1", started_at=DAY_ZERO).collect_events()[0]

    assert (started.previous_hash, started.hash) == (GENESIS_HASH, hash_recomputed(started)), (
        f"{EVENTSOURCING}: the first event of Relationship(...) is not the one "
        "ChainedAggregate._create hashed: the library no longer creates aggregates through "
        "_create, or adds other fields to a created event's state; re-check "
        "lifecycle/domain/relationship.py"
    )


def test_the_originator_topic_the_domain_hashes_is_the_library_s_topic_of_the_class() -> None:
    started = Relationship(customer_id="c-1", started_at=DAY_ZERO).collect_events()[0]
    hashed = f"{Relationship.__module__}:{Relationship.__qualname__}"

    assert started.originator_topic == hashed == get_topic(Relationship), (
        f"{EVENTSOURCING}: get_topic(Relationship) is {get_topic(Relationship)!r} and the "
        f"created event holds {started.originator_topic!r}, but ChainedAggregate._create "
        f"hashes {hashed!r}: re-check how the library names a class's topic"
    )


def test_a_relationship_s_commands_trigger_events_with_their_fields() -> None:
    relationship = Relationship(customer_id="c-1", started_at=DAY_ZERO)
    relationship.record_touchpoint(
        Touchpoint(
            event_id="t-1",
            customer_id="c-1",
            kind=Kind.INQUIRY,
            channel=Channel.EMAIL,
            occurred_at=DAY_ZERO,
            producer="helpdesk",
        ),
        Policy.default(),
    )
    started, recorded = relationship.collect_events()[:2]

    assert (recorded.previous_hash, recorded.hash) == (started.hash, hash_recomputed(recorded)), (
        f"{EVENTSOURCING}: Aggregate.trigger_event(event_class, **kwargs) no longer gets "
        "an @event command's fields as kwargs, or the event's state holds others; "
        "lifecycle/domain/relationship.py overrides it to chain each event to the last: "
        "re-check Relationship.trigger_event"
    )


ERASED = {
    "timestamp": DAY_ZERO,
    "hash": "1" * 64,
    "previous_hash": "0" * 64,
    "customer_id": "c-1",
    "reason": "requested",
    "actor": None,
    "erased_at": DAY_ZERO,
}


def test_an_event_triggered_without_its_init_equals_the_one_its_constructor_makes() -> None:
    relationship = Relationship(customer_id="c-1", started_at=DAY_ZERO)
    relationship.collect_events()

    library.trigger_event(relationship, Relationship.PersonalDataErased, dict(ERASED))
    (erased,) = relationship.collect_events()
    made = Relationship.PersonalDataErased(**vars(erased))

    assert (list(vars(erased).items()), erased) == (list(vars(made).items()), made), (
        f"{EVENTSOURCING}: an event made by {LIBRARY} (trigger_event) without its "
        "dataclass's __init__ (its __dict__ set at once) differs from one made by the "
        "constructor: the library's events gained a __post_init__ that sets fields, or "
        "fields outside __init__; re-check it"
    )


def test_triggering_an_event_is_making_applying_and_keeping_it_pending() -> None:
    door = Relationship(customer_id="c-1", started_at=DAY_ZERO)
    door.collect_events()
    library_way = copy.deepcopy(door)

    library.trigger_event(door, Relationship.PersonalDataErased, dict(ERASED))
    Aggregate.trigger_event(library_way, Relationship.PersonalDataErased, **ERASED)

    assert (vars(door), door.collect_events()) == (
        vars(library_way),
        library_way.collect_events(),
    ), (
        f"{EVENTSOURCING}: Aggregate.trigger_event does more than make the event, apply "
        "it (mutate) and append it to _pending_events, or keeps pending events elsewhere; "
        f"{LIBRARY} (trigger_event) does just that without it: re-check it"
    )


def test_fields_that_are_not_exactly_the_event_s_are_refused_as_the_library_refuses_them() -> None:
    relationship = Relationship(customer_id="c-1", started_at=DAY_ZERO)

    with pytest.raises(TypeError, match="Can't construct event"):
        library.trigger_event(
            relationship, Relationship.PersonalDataErased, {**ERASED, "unknown": 1}
        )


# kafka-python: the consumer's network client --------------------------------------------


def test_the_consumer_s_network_client_knows_its_cluster_and_connections() -> None:
    client = KafkaConsumer.DEFAULT_CONFIG["kafka_client"]

    assert (
        isinstance(inspect.getattr_static(client, "cluster"), property)
        and shape(client.connected) == "(node_id)"
    ), (
        f"{KAFKA}: the consumer's network client ({client.__name__}, consumer._client) "
        f"lost its cluster property or connected(node_id); {KAFKA_INTERNALS} "
        "(broker_reachable) reads both: re-check it"
    )


@pytest.mark.parametrize(("method", "expected"), [("topic_id", "(topic_name)"), ("brokers", "()")])
def test_the_cluster_metadata_reports_topic_ids_and_brokers(method: str, expected: str) -> None:
    assert shape(getattr(ClusterMetadata, method)) == expected, (
        f"{KAFKA}: ClusterMetadata.{method}{expected} changed; {KAFKA_INTERNALS} "
        "(topic_id, broker_reachable) calls it on consumer._client.cluster: re-check it"
    )
