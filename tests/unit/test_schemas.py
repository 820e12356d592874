"""The checked-in JSON Schemas are generated from the models and must not drift."""

from __future__ import annotations

import json

import pytest

from lifecycle.domain.messages import MESSAGE_VERSIONS
from lifecycle.entrypoints.cli.schemas import render, schemas
from tests.conftest import REPO


@pytest.mark.parametrize("name", sorted(schemas()))
def test_the_checked_in_schema_matches_the_models(name: str) -> None:
    checked_in = (REPO / "schemas" / name).read_text(encoding="utf-8")
    assert checked_in == render(schemas()[name]), (
        f"run: lifecycle schemas export --out schemas ({name})"
    )


@pytest.mark.parametrize("number", sorted(MESSAGE_VERSIONS))
def test_each_touchpoint_schema_is_draft_2020_12_and_names_every_kind(number: int) -> None:
    schema = json.loads((REPO / "schemas" / f"touchpoint.v{number}.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["discriminator"]["mapping"]) == {
        "marketing", "inquiry", "response", "sales_contact", "trial", "purchase", "delivery",
        "support_request", "complaint", "complaint_resolved", "survey", "follow_up",
        "referral", "community", "renewal", "cancellation",
    }  # fmt: skip


def test_the_version_2_schema_names_producer_and_the_total_of_a_purchase() -> None:
    schema = json.loads((REPO / "schemas" / "touchpoint.v2.schema.json").read_text())
    purchase = schema["$defs"]["PurchaseTouchpointV2"]

    assert {"producer", "correlation_id"} <= set(purchase["properties"])
    assert "source" not in purchase["properties"]
    assert schema["$defs"]["PurchaseAttributesV2"]["required"] == ["total"]
    assert schema["$defs"]["Total"]["properties"]["amount"]["type"] == "string"
