"""Contract 1: every rejection carries a stable code and a one-line reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from lifecycle.domain.errors import RejectedTouchpoint
from lifecycle.domain.messages import MAX_MESSAGE_BYTES, MessageRules, parse_touchpoint
from lifecycle.domain.vocabulary import Kind
from tests.builders import message

NOW = datetime(2024, 6, 1, tzinfo=UTC)
RULES = MessageRules(default_currency="EUR", max_future_skew=timedelta(minutes=5))


def parse(value: dict[str, Any] | bytes) -> Any:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return parse_touchpoint(raw, NOW, RULES)


def rejection(value: dict[str, Any] | bytes) -> RejectedTouchpoint:
    with pytest.raises(RejectedTouchpoint) as caught:
        parse(value)
    assert "\n" not in caught.value.reason
    return caught.value


def test_a_valid_message_becomes_a_touchpoint() -> None:
    touchpoint = parse(message("inquiry", event_id="e-1", customer_id="c-1"))
    assert (touchpoint.event_id, touchpoint.customer_id, touchpoint.kind) == (
        "e-1",
        "c-1",
        Kind.INQUIRY,
    )
    assert touchpoint.occurred_at.utcoffset() == timedelta(hours=1)


def test_a_purchase_amount_may_be_a_json_number_or_a_decimal_string() -> None:
    as_number = parse(message("purchase", attributes={"amount": 19.99}))
    as_string = parse(message("purchase", attributes={"amount": "19.99"}))
    assert (
        Decimal(as_number.attributes["amount"])
        == Decimal(as_string.attributes["amount"])
        == Decimal("19.99")
    )


def test_a_purchase_without_currency_gets_the_configured_default() -> None:
    assert parse(message("purchase")).attributes["currency"] == "EUR"


def test_unknown_attribute_keys_are_kept() -> None:
    touchpoint = parse(message("purchase", attributes={"amount": "1", "coupon": "SPRING"}))
    assert touchpoint.attributes["coupon"] == "SPRING"


def test_schema_version_defaults_to_1() -> None:
    assert parse(message()).schema_version == 1


@pytest.mark.parametrize(
    ("value", "code", "names"),
    [
        (b"{not json", "invalid_json", "JSON"),
        (b"[1, 2]", "not_an_object", "object"),
        (message(kind="teleport"), "unknown_kind", "teleport"),
        ({k: v for k, v in message().items() if k != "kind"}, "missing_field", "kind"),
        ({k: v for k, v in message().items() if k != "event_id"}, "missing_field", "event_id"),
        (message(event_id=""), "invalid_field", "event_id"),
        (message(event_id="x" * 129), "invalid_field", "event_id"),
        (message(channel="pigeon"), "invalid_field", "channel"),
        (message(occurred_at="2024-03-01T10:00:00"), "invalid_field", "occurred_at"),
        (message(source="s" * 65), "invalid_field", "source"),
        (message(colour="blue"), "unknown_field", "colour"),
        (message(schema_version=3), "unsupported_schema_version", "schema_version"),
        (message("purchase", attributes={}), "invalid_attribute", "attributes.amount"),
        (message("purchase", attributes={"amount": -1}), "invalid_attribute", "attributes.amount"),
        (
            message("purchase", attributes={"amount": "1", "currency": "euro"}),
            "invalid_attribute",
            "currency",
        ),
        (message("complaint", attributes={}), "invalid_attribute", "attributes.complaint_id"),
        (message("complaint_resolved", attributes={}), "invalid_attribute", "complaint_id"),
        (message("survey", attributes={"score": 11}), "invalid_attribute", "attributes.score"),
        (message("survey", attributes={"score": "7"}), "invalid_attribute", "attributes.score"),
        (message(personal={"shoe_size": 44}), "unknown_field", "personal.shoe_size"),
    ],
)
def test_an_invalid_message_is_rejected_with_a_code_naming_the_problem(
    value: dict[str, Any] | bytes, code: str, names: str
) -> None:
    rejected = rejection(value)
    assert rejected.code == code
    assert names in rejected.reason


def test_a_message_larger_than_64_kib_is_rejected_as_too_large() -> None:
    huge = message(attributes={"note": "x" * MAX_MESSAGE_BYTES})
    assert rejection(huge).code == "too_large"


def test_occurred_at_more_than_five_minutes_ahead_is_rejected() -> None:
    ahead = (NOW + timedelta(minutes=6)).isoformat()
    assert rejection(message(occurred_at=ahead)).code == "occurred_in_future"


def test_occurred_at_within_the_allowed_skew_is_accepted() -> None:
    assert parse(message(occurred_at=(NOW + timedelta(minutes=4)).isoformat()))


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1])
def test_an_attribute_integer_beyond_64_bits_is_an_invalid_attribute(number: int) -> None:
    refused = rejection(message("inquiry", attributes={"x": [{"y": number}]}))

    assert (refused.code, refused.reason) == (
        "invalid_attribute",
        "attributes.x.0.y: integer beyond 64 bits",
    )


def test_attributes_nested_too_deep_are_an_invalid_attribute() -> None:
    nested: Any = 1
    for _ in range(40):
        nested = {"n": nested}

    refused = rejection(message("inquiry", attributes=nested))

    assert refused.code == "invalid_attribute"
    assert "nested deeper than 32 levels" in refused.reason


def test_64_bit_integers_and_modest_nesting_are_kept_as_they_came() -> None:
    attributes = {"big": 2**64 - 1, "small": -(2**63), "deep": [[[{"a": [1]}]]]}

    assert parse(message("inquiry", attributes=attributes)).attributes == attributes
