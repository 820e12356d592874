"""Touchpoints over HTTP (Contract 7) as an upstream system without Kafka sends them:
one message, an array, or JSON lines; every item answered; the write read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.api import create_app
from projections.api.routes.ingest import MAX_BODY_BYTES, MAX_ITEMS
from projections.service import start_projections
from tests.builders import message
from tests.e2e.read.conftest import ADMIN, AUDITOR, PUBLISHER, READER

ROUTE = "/v1/touchpoints"
JSON_LINES = {**PUBLISHER, "Content-Type": "application/x-ndjson"}


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(Components(api_settings).read_side())) as test_client:
        yield test_client


@pytest.fixture
def reader_app(api_settings: Settings) -> Iterator[LifecycleApplication]:
    app = Components(api_settings).application()
    yield app
    app.close()


def _statuses(body: dict[str, Any]) -> list[tuple[str | None, str, str | None]]:
    return [(r["event_id"], r["status"], r["error_code"]) for r in body["results"]]


def test_one_message_is_recorded_and_answered_with_a_list_of_one(
    client: TestClient, reader_app: LifecycleApplication
) -> None:
    response = client.post(ROUTE, json=message(event_id="e1", customer_id="c1"), headers=PUBLISHER)

    assert response.status_code == 200
    body = response.json()
    assert body["results"] == [
        {
            "event_id": "e1",
            "customer_id": "c1",
            "status": "recorded",
            "error_code": None,
            "reason": None,
        }
    ]
    assert body["position"] == reader_app.recorder.max_notification_id()
    assert reader_app.relationship("c1").touchpoint_count == 1


def test_an_array_is_answered_item_by_item_in_order(client: TestClient) -> None:
    items = [
        message(event_id="e1", customer_id="c1"),
        message(event_id="e1", customer_id="c1"),
        message(event_id="e2", customer_id="c1", kind="survey"),
        message(event_id="e3", customer_id="c2", kind="purchase"),
        {"event_id": "e4", "customer_id": "c2"},
        7,
    ]

    body = client.post(ROUTE, json=items, headers=PUBLISHER).json()

    assert _statuses(body) == [
        ("e1", "recorded", None),
        ("e1", "duplicate", None),
        ("e2", "rejected", "invalid_attribute"),
        ("e3", "recorded", None),
        ("e4", "rejected", "missing_field"),
        (None, "rejected", "not_an_object"),
    ]
    assert body["results"][2]["reason"] == "attributes: Field required"


def test_json_lines_are_items_one_per_line(client: TestClient) -> None:
    lines = [
        json.dumps(message(event_id="e1", customer_id="c1")),
        "",
        '{"event_id": "e2", "customer_id": "c1", "kind": ',
        json.dumps(message(event_id="e3", customer_id="c1", kind="purchase")),
    ]

    body = client.post(ROUTE, content="\n".join(lines) + "\n", headers=JSON_LINES).json()

    assert _statuses(body) == [
        ("e1", "recorded", None),
        (None, "rejected", "invalid_json"),
        ("e3", "recorded", None),
    ]


def test_sending_a_batch_again_records_nothing_and_answers_the_head(
    client: TestClient, reader_app: LifecycleApplication
) -> None:
    batch = [message(event_id=f"e{n}", customer_id="c1") for n in range(3)]
    first = client.post(ROUTE, json=batch, headers=PUBLISHER).json()

    again = client.post(ROUTE, json=batch, headers=PUBLISHER).json()

    assert [r["status"] for r in again["results"]] == ["duplicate"] * 3
    assert again["position"] == first["position"] == reader_app.recorder.max_notification_id()


def test_rejected_items_are_answered_and_not_recorded(
    client: TestClient, reader_app: LifecycleApplication
) -> None:
    body = client.post(
        ROUTE, json=[message(customer_id="c1", occurred_at="2999-01-01T00:00:00Z")], headers=ADMIN
    ).json()

    assert _statuses(body)[0][1:] == ("rejected", "occurred_in_future")
    assert reader_app.recorder.max_notification_id() is None
    assert body["position"] == 0


def test_the_position_answered_reads_the_write_back_through_min_position(
    api_settings: Settings,
) -> None:
    # Long enough for the runners, which poll SQLite, to project the write.
    settings = api_settings.model_copy(update={"api_wait_seconds": 10.0})
    running = start_projections(Components(settings))
    try:
        with TestClient(create_app(Components(settings).read_side())) as client:
            written = client.post(
                ROUTE, json=message(customer_id="c1", kind="purchase"), headers=PUBLISHER
            ).json()
            summary = client.get(
                f"/v1/customers/c1?min_position={written['position']}", headers=PUBLISHER
            )
    finally:
        running.stop()

    assert summary.status_code == 200
    assert summary.json()["position"] >= written["position"]
    assert summary.json()["relationship"]["purchases"] == 1


def test_personal_data_sent_over_http_is_recorded_encrypted(client: TestClient) -> None:
    client.post(
        ROUTE,
        json=message(customer_id="c1", personal={"name": "Ada Lovelace"}),
        headers=PUBLISHER,
    )

    history = client.get("/v1/customers/c1/history", headers=AUDITOR).json()

    recorded = [e for e in history["events"] if e["type"] == "TouchpointRecorded"]
    assert recorded[0]["personal"] == {"encrypted": True}
    assert "Ada" not in json.dumps(history)


def test_a_body_that_is_not_json_is_a_bad_request(client: TestClient) -> None:
    response = client.post(ROUTE, content=b'{"event_id": ', headers=PUBLISHER)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (json.dumps([message()] * (MAX_ITEMS + 1)), PUBLISHER),
        ("\n".join([json.dumps(message())] * (MAX_ITEMS + 1)), JSON_LINES),
        (" " * (MAX_BODY_BYTES + 1), PUBLISHER),
    ],
    ids=["array", "json-lines", "bytes"],
)
def test_too_many_items_or_bytes_is_too_large(
    client: TestClient, reader_app: LifecycleApplication, body: str, headers: dict[str, str]
) -> None:
    response = client.post(ROUTE, content=body, headers=headers)

    assert response.status_code == 413
    assert response.json()["error"] in ("too_many_items", "too_large")
    assert reader_app.recorder.max_notification_id() is None


def test_publishing_needs_a_valid_key(client: TestClient) -> None:
    response = client.post(ROUTE, json=message())

    assert (response.status_code, response.json()["error"]) == (401, "unauthorized")


@pytest.mark.parametrize("headers", [READER, AUDITOR], ids=["reader", "auditor"])
def test_publishing_is_for_publishers_and_admins(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.post(ROUTE, json=message(), headers=headers)

    assert (response.status_code, response.json()["error"]) == (403, "forbidden")


def test_a_publisher_reads_summaries_and_nothing_else(client: TestClient) -> None:
    client.post(ROUTE, json=message(customer_id="c1"), headers=PUBLISHER)

    statuses = {
        route: client.get(route, headers=PUBLISHER).status_code
        for route in (
            "/v1/customers",
            "/v1/customers/c1/stages",
            "/v1/customers/c1/history",
            "/v1/funnel",
            "/v1/complaints",
        )
    }

    assert statuses == {
        "/v1/customers": 200,
        "/v1/customers/c1/stages": 200,
        "/v1/customers/c1/history": 403,
        "/v1/funnel": 403,
        "/v1/complaints": 403,
    }
