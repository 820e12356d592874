"""Exports an auditor verifies offline, with nothing but the files and the key."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lifecycle.audit.export import EVENTS_FILE, MANIFEST_FILE, export_events, verify_export
from lifecycle.audit.verify import TamperingDetected
from lifecycle.domain.outbound import RelationshipEvent
from tests.integration.audit_support import (
    DAY_ZERO,
    LOG_EVENTS,
    POLICY_EVENTS,
    STREAMS,
    AuditedStore,
    recorded_store,
)


@pytest.fixture
def store(database_url: str) -> Iterator[AuditedStore]:
    yield from recorded_store(database_url, sealed=True)


def export(store: AuditedStore, out: Path, **filters: object) -> Path:
    export_events(store.app, store.ledger, store.key, out, **filters)  # type: ignore[arg-type]
    return out


def lines(directory: Path) -> list[dict[str, object]]:
    text = (directory / EVENTS_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def rewrite(directory: Path, events: list[dict[str, object]]) -> None:
    text = "".join(json.dumps(event) + "\n" for event in events)
    (directory / EVENTS_FILE).write_text(text, encoding="utf-8")


def test_a_complete_export_verifies_offline_against_the_signed_checkpoint(
    store: AuditedStore, tmp_path: Path
) -> None:
    directory = export(store, tmp_path / "export")
    copy = shutil.copytree(directory, tmp_path / "elsewhere")
    report = verify_export(copy, store.key)
    assert (report.events, report.streams, report.complete) == (LOG_EVENTS, STREAMS, True)
    assert (report.checkpoint, report.sealed_events) == (1, LOG_EVENTS)


def test_each_line_is_a_contract_3_event_with_its_position_and_hash(
    store: AuditedStore, tmp_path: Path
) -> None:
    first = lines(export(store, tmp_path / "export"))[POLICY_EVENTS]
    assert first["type"] == "RelationshipStarted"
    assert first["position"] == POLICY_EVENTS + 1
    assert first["previous_hash"] == "0" * 64
    assert isinstance(first["hash"], str)
    assert len(first["hash"]) == 64


def test_an_edited_line_is_named(store: AuditedStore, tmp_path: Path) -> None:
    directory = export(store, tmp_path / "export")
    events = lines(directory)
    purchase = events[POLICY_EVENTS + 2]
    assert isinstance(purchase["data"], dict)
    purchase["data"]["attributes"]["amount"] = "1.50"
    rewrite(directory, events)
    with pytest.raises(TamperingDetected) as raised:
        verify_export(directory, store.key)
    message = str(raised.value)
    assert f"customer ann, version 3, position {purchase['position']}" in message
    assert f"line {POLICY_EVENTS + 3}: its content does not match its hash" in message


def test_a_removed_line_is_caught(store: AuditedStore, tmp_path: Path) -> None:
    directory = export(store, tmp_path / "export")
    events = lines(directory)
    middle = POLICY_EVENTS + 10  # bob's third event
    rewrite(directory, events[:middle] + events[middle + 1 :])
    with pytest.raises(TamperingDetected, match="removed or reordered"):
        verify_export(directory, store.key)


def test_an_altered_manifest_is_caught(store: AuditedStore, tmp_path: Path) -> None:
    directory = export(store, tmp_path / "export")
    manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["events"] = 31
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(TamperingDetected, match="manifest does not carry a valid signature"):
        verify_export(directory, store.key)


def test_one_customers_export_verifies(store: AuditedStore, tmp_path: Path) -> None:
    directory = export(store, tmp_path / "export", customer_id="cyd")
    report = verify_export(directory, store.key)
    assert (report.events, report.streams, report.complete) == (8, 1, False)
    assert {event["customer_id"] for event in lines(directory)} == {"cyd"}


def test_an_export_by_recorded_time_holds_what_was_recorded_then(
    store: AuditedStore, tmp_path: Path
) -> None:
    since = datetime.now(UTC)
    store.app.forget("dee", reason="request", actor=None, at=DAY_ZERO)
    directory = export(store, tmp_path / "export", since=since)
    assert [event["type"] for event in lines(directory)] == ["PersonalDataErased"]
    assert verify_export(directory, store.key).events == 1


def test_a_tampered_store_is_not_exported(store: AuditedStore, tmp_path: Path) -> None:
    victim = store.tamperer.stream("bob")[4]
    store.tamperer.replace_state(victim, victim.state.replace(b'"web"', b'"fax"', 1))
    with pytest.raises(TamperingDetected, match="customer bob, version 5"):
        export(store, tmp_path / "export")
    assert list((tmp_path / "export").iterdir()) == []


def test_a_line_whose_customer_was_changed_is_caught(store: AuditedStore, tmp_path: Path) -> None:
    directory = export(store, tmp_path / "export")
    events = lines(directory)
    events[5]["customer_id"] = "mallory"
    rewrite(directory, events)
    with pytest.raises(TamperingDetected, match="line 6: its customer_id differs"):
        verify_export(directory, store.key)


def test_every_line_is_a_relationship_event_of_the_published_schema(
    store: AuditedStore, tmp_path: Path
) -> None:
    directory = export(store, tmp_path / "export")
    text = (directory / EVENTS_FILE).read_text(encoding="utf-8")
    parsed = [RelationshipEvent.model_validate_json(line) for line in text.splitlines()]
    assert [event.position for event in parsed] == list(range(1, LOG_EVENTS + 1))
