"""The published JSON Schema of an exported line is the one the model generates."""

from __future__ import annotations

from pathlib import Path

from lifecycle.domain.outbound import relationship_event_json_schema
from lifecycle.entrypoints.cli.schemas import render

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "relationship-event.v1.schema.json"


def test_the_committed_relationship_event_schema_matches_the_model() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == render(relationship_event_json_schema)


def test_the_schema_describes_the_audit_fields_of_a_line() -> None:
    properties = relationship_event_json_schema()["properties"]
    assert {"position", "hash", "previous_hash", "personal"} <= set(properties)
