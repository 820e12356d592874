"""Every route of the read API, every role and every error status."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.api import create_app
from projections.service import catch_up
from tests.e2e.read.conftest import ADMIN, AUDITOR, READER
from tests.integration.projections.conftest import History

READER_ROUTES = [
    "/v1/customers",
    "/v1/customers/alice",
    "/v1/customers/alice/purchase-pattern",
    "/v1/funnel",
    "/v1/complaints",
    "/v1/inquiries",
    "/v1/follow-ups?before=2024-02-01&since=2024-01-01",
    "/v1/customers/alice/stages",
    "/v1/account-managers/ana/customers",
]
AUDITOR_ROUTES = ["/v1/customers/alice/history", "/v1/customers/alice/state"]
ADMIN_ROUTES = ["/v1/projections"]


@pytest.mark.parametrize("route", READER_ROUTES + AUDITOR_ROUTES + ADMIN_ROUTES)
def test_a_request_without_a_valid_key_is_unauthorized(client: TestClient, route: str) -> None:
    missing = client.get(route)
    wrong = client.get(route, headers={"Authorization": "Bearer nope"})

    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.json()["error"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("route", READER_ROUTES)
def test_every_role_reads_the_read_models(client: TestClient, route: str) -> None:
    statuses = {client.get(route, headers=h).status_code for h in (READER, AUDITOR, ADMIN)}

    assert statuses == {200}


@pytest.mark.parametrize("route", AUDITOR_ROUTES)
def test_history_and_state_are_for_auditors(client: TestClient, route: str) -> None:
    assert client.get(route, headers=READER).status_code == 403
    assert client.get(route, headers=AUDITOR).status_code == 200
    assert client.get(route, headers=ADMIN).status_code == 200


def test_projection_status_is_for_admins(client: TestClient) -> None:
    assert client.get("/v1/projections", headers=AUDITOR).json()["error"] == "forbidden"
    assert client.get("/v1/projections", headers=ADMIN).json()["ready"] is True


@pytest.mark.parametrize("route", READER_ROUTES + AUDITOR_ROUTES + ADMIN_ROUTES)
def test_every_answer_names_the_position_it_reflects(
    client: TestClient, route: str, recorded: LifecycleApplication
) -> None:
    response = client.get(route, headers=ADMIN)

    head = recorded.recorder.max_notification_id()
    assert response.json()["position"] == head
    assert response.headers["X-Projection-Position"] == str(head)


def test_the_summary_of_a_customer(client: TestClient) -> None:
    body = client.get("/v1/customers/alice?as_of=2024-01-11T00:00:00Z", headers=READER).json()

    summary = body["relationship"]
    assert (summary["stage"], summary["touchpoints"], summary["purchases"]) == ("expansion", 5, 2)
    assert summary["revenue"] == {"EUR": "40"}
    assert summary["counts_by_phase"]["delivery"] == 2
    assert (summary["open_complaints"], summary["at_risk"]) == (1, False)


@pytest.mark.parametrize("route", ["/v1/customers/nobody", "/v1/customers/nobody/purchase-pattern"])
def test_an_unknown_customer_is_not_found(client: TestClient, route: str) -> None:
    response = client.get(route, headers=READER)

    assert (response.status_code, response.json()["error"]) == (404, "not_found")


@pytest.mark.parametrize("route", ["/v1/customers/nobody/history", "/v1/customers/nobody/state"])
def test_an_unknown_customer_has_no_history(client: TestClient, route: str) -> None:
    assert client.get(route, headers=AUDITOR).status_code == 404


def test_the_list_filters_and_pages_with_a_cursor(client: TestClient) -> None:
    first = client.get("/v1/customers?limit=2", headers=READER).json()
    rest = client.get(f"/v1/customers?limit=2&cursor={first['next_cursor']}", headers=READER).json()
    risky = client.get(
        "/v1/customers?at_risk=true&as_of=2024-01-11T00:00:00Z", headers=READER
    ).json()
    dissolved = client.get("/v1/customers?stage=dissolution", headers=READER).json()

    assert [i["customer_id"] for i in first["items"] + rest["items"]] == ["alice", "bob", "carol"]
    assert rest["next_cursor"] is None
    assert [(i["customer_id"], i["flags"]) for i in risky["items"]] == [
        ("carol", ["low_survey_score"])
    ]
    assert [i["customer_id"] for i in dissolved["items"]] == ["bob"]


def test_the_funnel(client: TestClient) -> None:
    body = client.get("/v1/funnel", headers=READER).json()

    assert {s["stage"]: s["current"] for s in body["stages"]} == {
        "exploration": 0,
        "awareness": 1,
        "expansion": 1,
        "commitment": 0,
        "dissolution": 1,
    }
    assert body["dissolutions"] == [{"rule": "cancelled", "reason": "price", "count": 1}]


def test_complaints_inquiries_and_follow_ups(client: TestClient) -> None:
    complaints = client.get("/v1/complaints?status=open", headers=READER).json()
    inquiries = client.get("/v1/inquiries", headers=READER).json()
    follow_ups = client.get(
        "/v1/follow-ups?before=2024-01-31&since=2024-01-01&kind=thank_you_call", headers=READER
    ).json()

    assert [(c["complaint_id"], c["reason"]) for c in complaints["items"]] == [("k1", "broken")]
    assert inquiries["stats"]["median_hours"] == 12.0
    assert (follow_ups["items"][0]["customer_id"], follow_ups["items"][0]["ref"]) == ("alice", "p1")


def test_the_purchase_pattern_at_an_observation_end(client: TestClient) -> None:
    body = client.get(
        "/v1/customers/alice/purchase-pattern?observation_end=2024-01-31", headers=READER
    ).json()

    assert (body["frequency"], body["recency"], body["T"]) == (1, 7, 29)
    assert body["monetary_value"] == "30"
    assert [a["category"] for a in body["category_affinity"]] == []


def test_history_and_state_as_of_a_version(client: TestClient) -> None:
    history = client.get("/v1/customers/carol/history", headers=AUDITOR).json()
    state = client.get("/v1/customers/carol/state?version=2", headers=AUDITOR).json()

    assert [e["type"] for e in history["events"]] == [
        "RelationshipStarted",
        "TouchpointRecorded",
        "StageChanged",
    ]
    assert (state["state"]["version"], state["state"]["stage"]) == (2, "exploration")


@pytest.mark.parametrize(
    "route",
    [
        "/v1/customers?limit=0",
        "/v1/customers?stage=limbo",
        "/v1/customers?cursor=not-a-cursor",
        "/v1/customers?as_of=2024-01-01T00:00:00",
        "/v1/customers?as_of=0001-01-01T00:00:00Z",
        "/v1/customers?min_position=-1",
        "/v1/follow-ups",
        "/v1/follow-ups?before=2025-06-01&since=2024-01-01",
        "/v1/follow-ups?before=2024-01-01&since=2024-02-01",
        "/v1/customers/alice/purchase-pattern?observation_end=yesterday",
        "/v1/customers/alice/state?version=1&as_of=2024-01-01T00:00:00Z",
        "/v1/customers/alice/state?version=0",
    ],
)
def test_bad_parameters_are_answered_422_with_a_message(client: TestClient, route: str) -> None:
    response = client.get(route, headers=ADMIN)

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_parameter"
    assert response.json()["message"]


def test_a_position_not_reached_in_time_is_a_conflict(
    client: TestClient, recorded: LifecycleApplication
) -> None:
    History(recorded)("alice", "inquiry", 20, event_id="late-inquiry")
    wanted = recorded.recorder.max_notification_id()

    response = client.get(f"/v1/customers/alice?min_position={wanted}", headers=READER)

    assert (response.status_code, response.json()["error"]) == (409, "position_not_reached")


def test_a_request_waits_briefly_for_the_position_it_asks_for(
    recorded: LifecycleApplication, api_settings: Settings
) -> None:
    # Long enough for the projector to catch up on a busy machine; the other tests keep
    # the short wait that makes their 409s quick.
    patient = api_settings.model_copy(update={"api_wait_seconds": 10.0})
    History(recorded)("alice", "inquiry", 20, event_id="late-inquiry")
    wanted = recorded.recorder.max_notification_id()
    projector = threading.Timer(
        0.05, catch_up, args=(Components(patient),), kwargs={"app": recorded}
    )

    with TestClient(create_app(Components(patient).read_side())) as client:
        projector.start()
        response = client.get(f"/v1/customers/alice?min_position={wanted}", headers=READER)
    projector.join()

    assert response.status_code == 200
    assert response.json()["relationship"]["touchpoints"] == 6


def test_readiness_follows_the_lag_of_the_read_models(
    client: TestClient, recorded: LifecycleApplication, api_settings: Settings
) -> None:
    assert client.get("/readyz").status_code == 200
    history = History(recorded)
    for n in range(3):
        history("dave", "inquiry", n)

    lagging = client.get("/readyz")
    catch_up(Components(api_settings))

    assert (lagging.status_code, lagging.json()["ready"]) == (503, False)
    assert client.get("/readyz").status_code == 200


def test_health_and_metrics_answer_without_a_key(client: TestClient) -> None:
    client.get("/v1/funnel", headers=READER)

    metrics = client.get("/metrics").text

    assert client.get("/healthz").json() == {"status": "ok"}
    assert 'lifecycle_projection_lag_events{projection="summary"} 0.0' in metrics
    assert "lifecycle_event_log_head" in metrics
    assert (
        'lifecycle_api_request_seconds_count{method="GET",route="/v1/funnel",status="200"}'
        in metrics
    )


def test_every_route_documents_its_response_models(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    for path, operations in paths.items():
        if path == "/metrics":
            continue
        for operation in operations.values():
            for status, response in operation["responses"].items():
                schema = response["content"]["application/json"]["schema"]
                assert "$ref" in schema, (path, status)


def test_history_lists_each_events_times_version_position_and_hash(client: TestClient) -> None:
    events = client.get("/v1/customers/carol/history", headers=AUDITOR).json()["events"]
    positions = [e["position"] for e in events]
    assert positions == sorted(positions)
    assert [e["version"] for e in events] == [1, 2, 3]
    assert all(len(e["hash"]) == 64 and e["occurred_at"] and e["recorded_at"] for e in events)
    assert [e["previous_hash"] for e in events[1:]] == [e["hash"] for e in events[:-1]]
