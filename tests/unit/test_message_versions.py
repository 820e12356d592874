"""Contract 6: both versions of the touchpoint message pass the one gate, which reads the
version first and turns version 1 into the current form, so behind it there is one."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lifecycle.domain.errors import RejectedTouchpoint
from lifecycle.domain.messages import (
    CURRENT_SCHEMA_VERSION,
    MessageGate,
    MessageRules,
    parse_touchpoint,
)
from lifecycle.domain.touchpoints import Touchpoint
from tests.builders import message, message_v2

NOW = datetime(2024, 6, 1, tzinfo=UTC)
RULES = MessageRules(default_currency="EUR", max_future_skew=timedelta(minutes=5))


def parse(value: dict[str, Any], gate: MessageGate | None = None) -> Touchpoint:
    raw = json.dumps(value).encode()
    if gate is not None:
        return gate.parse(raw, NOW, RULES)
    return parse_touchpoint(raw, NOW, RULES)


def rejection(value: dict[str, Any], gate: MessageGate | None = None) -> RejectedTouchpoint:
    with pytest.raises(RejectedTouchpoint) as caught:
        parse(value, gate)
    assert "\n" not in caught.value.reason
    return caught.value


def test_version_2_is_the_current_version() -> None:
    assert CURRENT_SCHEMA_VERSION == 2


def test_a_version_2_message_keeps_its_producer_and_correlation_id() -> None:
    touchpoint = parse(message_v2(producer="billing", correlation_id="order-flow-77"))

    assert (touchpoint.producer, touchpoint.correlation_id) == ("billing", "order-flow-77")
    assert touchpoint.schema_version == 2


def test_a_version_2_message_may_name_no_correlation_id() -> None:
    assert parse(message_v2()).correlation_id is None


def test_a_version_1_message_becomes_the_touchpoint_of_its_version_2_twin() -> None:
    v1 = message("purchase", source="shop", attributes={"amount": 19.99, "coupon": "SPRING"})
    twin = {k: v for k, v in v1.items() if k not in ("source", "attributes")}
    v2 = {
        **twin,
        "schema_version": 2,
        "producer": "shop",
        "attributes": {"total": {"amount": "19.99", "currency": "EUR"}, "coupon": "SPRING"},
    }

    upcast = parse(v1)

    assert upcast == replace(parse(v2), schema_version=1)


def test_a_version_1_message_has_its_source_as_producer_and_no_correlation_id() -> None:
    touchpoint = parse(message(source="helpdesk"))

    assert (touchpoint.producer, touchpoint.correlation_id) == ("helpdesk", None)
    assert touchpoint.schema_version == 1


def test_a_version_2_purchase_total_is_recorded_as_the_amount_and_currency_of_a_purchase() -> None:
    touchpoint = parse(
        message_v2(
            "purchase",
            attributes={"total": {"amount": "42.50", "currency": "USD"}, "category": "books"},
        )
    )

    assert touchpoint.attributes == {"amount": "42.50", "currency": "USD", "category": "books"}


def test_a_version_1_purchase_without_currency_gets_the_default_through_the_upcast() -> None:
    assert parse(message("purchase", attributes={"amount": "5"})).attributes == {
        "amount": "5",
        "currency": "EUR",
    }


@pytest.mark.parametrize(
    ("attributes", "names"),
    [
        ({"amount": "19.99", "currency": "EUR"}, "amount"),
        ({"total": {"amount": "19.99", "currency": "EUR"}, "amount": "19.99"}, "amount"),
        ({"total": {"amount": "19.99", "currency": "EUR"}, "currency": "EUR"}, "currency"),
        ({"total": {"amount": 19.99, "currency": "EUR"}}, "attributes.total.amount"),
        ({"total": {"amount": "-1", "currency": "EUR"}}, "attributes.total.amount"),
        ({"total": {"amount": "NaN", "currency": "EUR"}}, "attributes.total.amount"),
        ({"total": {"amount": "19.99"}}, "attributes.total.currency"),
        ({"total": {"amount": "19.99", "currency": "euro"}}, "attributes.total.currency"),
        ({}, "attributes.total"),
    ],
)
def test_a_version_2_purchase_names_its_amount_in_total_only(
    attributes: dict[str, Any], names: str
) -> None:
    rejected = rejection(message_v2("purchase", attributes=attributes))

    assert rejected.code == "invalid_attribute"
    assert names in rejected.reason


@pytest.mark.parametrize(
    ("fields", "code", "names"),
    [
        ({"source": "shop"}, "unknown_field", "source"),
        ({"producer": "p" * 65}, "invalid_field", "producer"),
        ({"correlation_id": ""}, "invalid_field", "correlation_id"),
        ({"correlation_id": "c" * 129}, "invalid_field", "correlation_id"),
    ],
)
def test_an_invalid_version_2_message_is_rejected_with_a_code_naming_the_problem(
    fields: dict[str, Any], code: str, names: str
) -> None:
    rejected = rejection(message_v2(**fields))

    assert rejected.code == code
    assert names in rejected.reason


def test_a_version_2_message_without_a_producer_misses_a_field() -> None:
    without = {k: v for k, v in message_v2().items() if k != "producer"}

    assert rejection(without).code == "missing_field"


@pytest.mark.parametrize(
    "unknown",
    [
        # An unknown version is the cause, whatever else is wrong with the message.
        message(schema_version=3),
        {"schema_version": 3},
        message(schema_version=99, kind="teleport", occurred_at="yesterday"),
        message_v2(schema_version=3, attributes={"amount": -1}),
        message(schema_version=0),
        message(schema_version="two"),
        message(schema_version=None),
    ],
)
def test_a_version_the_engine_does_not_know_is_unsupported_whatever_else_it_carries(
    unknown: dict[str, Any],
) -> None:
    rejected = rejection(unknown)

    assert rejected.code == "unsupported_schema_version"
    assert "schema_version" in rejected.reason
    assert "1, 2" in rejected.reason


def test_a_gate_that_accepts_version_1_only_finds_version_2_unsupported() -> None:
    knows_v1 = MessageGate(accepts={1})

    assert rejection(message_v2(), knows_v1).code == "unsupported_schema_version"
    assert parse(message(), knows_v1).schema_version == 1


def test_a_gate_cannot_accept_a_version_that_does_not_exist() -> None:
    with pytest.raises(ValueError, match="3"):
        MessageGate(accepts={1, 3})


def test_a_version_2_message_too_far_in_the_future_is_rejected() -> None:
    ahead = (NOW + timedelta(minutes=6)).isoformat()

    assert rejection(message_v2(occurred_at=ahead)).code == "occurred_in_future"
