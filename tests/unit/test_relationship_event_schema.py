"""The published JSON Schemas of Contract 3 (an exported line, a relayed event) are the
ones the models generate, one per version."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.domain.outbound import OUTBOUND_VERSIONS, relationship_event_json_schema
from lifecycle.entrypoints.cli.schemas import render

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.mark.parametrize("number", sorted(OUTBOUND_VERSIONS))
def test_the_committed_relationship_event_schema_matches_the_model(number: int) -> None:
    committed = SCHEMAS / f"relationship-event.v{number}.schema.json"

    assert committed.read_text(encoding="utf-8") == render(
        lambda: relationship_event_json_schema(number)
    )


@pytest.mark.parametrize("number", sorted(OUTBOUND_VERSIONS))
def test_the_schema_describes_the_audit_fields_of_a_line(number: int) -> None:
    properties = relationship_event_json_schema(number)["properties"]
    assert {"position", "hash", "previous_hash", "personal"} <= set(properties)


def test_version_2_names_its_version_and_the_cause_of_the_event() -> None:
    properties = relationship_event_json_schema(2)["properties"]
    assert properties["schema_version"]["const"] == 2
    assert {"correlation_id", "producer"} <= set(properties)


def test_version_1_is_the_contract_as_it_was() -> None:
    properties = relationship_event_json_schema(1)["properties"]
    assert not {"schema_version", "correlation_id", "producer"} & set(properties)
