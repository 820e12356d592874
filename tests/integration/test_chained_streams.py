"""Streams that are not relationships (the policy's, the analytics models') share the
log with relationships: they are hash-chained, sealed, verified and exported alike, with
``customer_id`` null, and never relayed. An event class at version 2 or later has its
class version covered by its hash."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate, event

from lifecycle.audit.chain import check_rows
from lifecycle.audit.export import EVENTS_FILE, export_events, verify_export
from lifecycle.audit.history import audited_history
from lifecycle.domain.hashchain import event_hash
from lifecycle.domain.policy_stream import POLICY_STREAM_ID
from lifecycle.domain.streams import ChainedAggregate, stream_id
from lifecycle.persistence.recorders import read_log, stream_log
from lifecycle.service.application import RELATIONSHIP_TOPICS
from tests.integration.audit_support import AuditedStore, audited_store, record_population

NOTES = "test-notes"


class Notebook(ChainedAggregate):
    """A stream that is not a relationship, as the policy's and the models' are."""

    class Event(ChainedAggregate.Event):
        pass

    class NotebookOpened(Event, Aggregate.Created):
        name: str

    class NoteTaken(Event):
        class_version = 2
        text: str
        author: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["author"] = "unknown"

    @staticmethod
    def create_id(name: str) -> UUID:
        return stream_id(name)

    @event(NotebookOpened)
    def __init__(self, name: str) -> None:
        self.notes: list[str] = []

    @event(NoteTaken)
    def take(self, text: str, author: str) -> None:
        self.notes.append(text)


@pytest.fixture
def store(database_url: str) -> Iterator[AuditedStore]:
    with audited_store(database_url) as audited:
        record_population(audited.app)
        notebook = Notebook(name=NOTES)
        notebook.take("first", author="ana")
        notebook.take("second", author="ben")
        audited.app.save(notebook)
        audited.seal()
        yield audited


def notebook_rows(store: AuditedStore) -> list[Any]:
    return stream_log(store.app.recorder, stream_id(NOTES))


def test_a_stream_that_is_not_a_relationship_verifies_with_the_relationships(
    store: AuditedStore,
) -> None:
    report = store.verify()
    assert report.streams == 6  # four relationships, the adopted policy's and the notebook
    assert report.sealed_events == report.events


def test_an_event_at_class_version_2_stores_its_version_and_its_hash_covers_it(
    store: AuditedStore,
) -> None:
    _, originator_id, version, topic, state = notebook_rows(store)[1]
    stored = json.loads(state)
    assert stored["class_version"] == 2
    assert check_rows([(0, originator_id, version, topic, state)])[0][2]
    without_version = {k: v for k, v in stored.items() if k not in ("hash", "class_version")}
    assert event_hash("NoteTaken", originator_id, version, without_version) != stored["hash"]


def test_an_edited_class_version_is_caught_as_tampering(store: AuditedStore) -> None:
    row = notebook_rows(store)[1]
    _, originator_id, version, topic, state = row
    edited = state.replace(b'"class_version":2', b'"class_version":3')
    assert edited != state
    assert not check_rows([(0, originator_id, version, topic, edited)])[0][2]


def test_the_domain_reads_the_stream_back_at_its_current_version(store: AuditedStore) -> None:
    notebook: Notebook = store.app.repository.get(stream_id(NOTES))
    assert notebook.notes == ["first", "second"]
    assert notebook.version == 3


def test_export_lines_of_other_streams_carry_no_customer_and_verify_offline(
    store: AuditedStore, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    export_events(store.app, store.ledger, store.key, out)
    lines = [json.loads(line) for line in (out / EVENTS_FILE).read_text().splitlines()]
    notes = [line for line in lines if line["relationship_id"] == str(stream_id(NOTES))]
    assert [(n["type"], n["customer_id"]) for n in notes] == [
        ("NotebookOpened", None),
        ("NoteTaken", None),
        ("NoteTaken", None),
    ]
    assert notes[1]["data"]["class_version"] == 2  # exported as stored
    assert verify_export(out, store.key).streams == 6


def test_a_relationship_event_without_a_customer_fails_offline_verification(
    store: AuditedStore, tmp_path: Path
) -> None:
    from lifecycle.audit.verify import TamperingDetected

    out = tmp_path / "export"
    export_events(store.app, store.ledger, store.key, out)
    lines = (out / EVENTS_FILE).read_text().splitlines()
    first = json.loads(lines[0])
    first["customer_id"] = None
    first["data"]["customer_id"] = None
    (out / EVENTS_FILE).write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    with pytest.raises(TamperingDetected):
        verify_export(out, store.key)


def test_relationship_topics_leave_other_streams_out_of_what_the_relay_reads(
    store: AuditedStore,
) -> None:
    every = read_log(store.app.recorder, None, 1_000)
    relayed = store.app.recorder.select_notifications(1, 1_000, topics=RELATIONSHIP_TOPICS)
    policy_events = len(stream_log(store.app.recorder, POLICY_STREAM_ID))
    assert policy_events == 2  # the stream started, the first policy adopted
    assert len(every) - len(relayed) == 3 + policy_events
    assert all(n.originator_id not in (stream_id(NOTES), POLICY_STREAM_ID) for n in relayed)


def test_a_customers_history_is_unchanged_by_other_streams(store: AuditedStore) -> None:
    history = audited_history(store.app, "ann")
    assert {event.customer_id for event in history} == {"ann"}
    assert [event.version for event in history] == list(range(1, len(history) + 1))
