"""The checked-in JSON Schemas are generated from the models and must not drift."""

from __future__ import annotations

import json

import pytest

from lifecycle.entrypoints.cli.schemas import render, schemas
from tests.conftest import REPO


@pytest.mark.parametrize("name", sorted(schemas()))
def test_the_checked_in_schema_matches_the_models(name: str) -> None:
    checked_in = (REPO / "schemas" / name).read_text(encoding="utf-8")
    assert checked_in == render(schemas()[name]), (
        f"run: lifecycle schemas export --out schemas ({name})"
    )


def test_the_touchpoint_schema_is_draft_2020_12_and_names_every_kind() -> None:
    schema = json.loads((REPO / "schemas" / "touchpoint.v1.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["discriminator"]["mapping"]) == {
        "marketing", "inquiry", "response", "sales_contact", "trial", "purchase", "delivery",
        "support_request", "complaint", "complaint_resolved", "survey", "follow_up",
        "referral", "community", "renewal", "cancellation",
    }  # fmt: skip
