"""Relationship types and account managers (Contract 7) as people and services use them:
`lifecycle assign`, the admin's PUT, a manager's book, and the list filtered by type."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.service import catch_up
from tests.conftest import run_cli
from tests.e2e.read.conftest import ADMIN, AUDITOR, PUBLISHER, READER

NOW = datetime(2024, 2, 1, tzinfo=UTC)


def test_an_admin_puts_a_manager_in_charge_and_reads_the_change_back(
    client: TestClient, api_settings: Settings
) -> None:
    response = client.put(
        "/v1/customers/bob/account-manager",
        json={"manager_id": "ana", "reason": "win back"},
        headers=ADMIN,
    )
    catch_up(Components(api_settings))
    summary = client.get(
        f"/v1/customers/bob?min_position={response.json()['position']}", headers=READER
    ).json()["relationship"]

    assert response.status_code == 200
    assert {k: v for k, v in response.json().items() if k != "position"} == {
        "customer_id": "bob",
        "account_manager": "ana",
        "changed": True,
        "version": 6,
    }
    assert (summary["account_manager"], summary["relationship_type"]) == (
        "ana",
        "dedicated_personal_assistance",
    )


def test_the_change_is_an_event_naming_the_reason_and_the_key_that_made_it(
    client: TestClient,
) -> None:
    client.put(
        "/v1/customers/bob/account-manager",
        json={"manager_id": "ana", "reason": "win back"},
        headers=ADMIN,
    )

    events = client.get("/v1/customers/bob/history", headers=AUDITOR).json()["events"]

    assigned = events[-1]
    assert assigned["type"] == "AccountManagerAssigned"
    assert (assigned["data"]["manager_id"], assigned["data"]["reason"]) == ("ana", "win back")
    assert assigned["data"]["actor"].startswith("api key ")
    assert "admin-key" not in json.dumps(events)


def test_null_takes_the_manager_off_and_doing_it_again_changes_nothing(
    client: TestClient,
) -> None:
    off = client.put(
        "/v1/customers/alice/account-manager",
        json={"manager_id": None, "reason": "left"},
        headers=ADMIN,
    ).json()
    again = client.put(
        "/v1/customers/alice/account-manager",
        json={"manager_id": None, "reason": "left"},
        headers=ADMIN,
    ).json()

    assert (off["account_manager"], off["changed"]) == (None, True)
    assert (again["changed"], again["version"]) == (False, off["version"])


@pytest.mark.parametrize("headers", [READER, AUDITOR, PUBLISHER])
def test_only_admins_put_a_manager_in_charge(client: TestClient, headers: dict[str, str]) -> None:
    response = client.put(
        "/v1/customers/bob/account-manager",
        json={"manager_id": "ana", "reason": "r"},
        headers=headers,
    )

    assert response.status_code == 403


def test_an_unknown_customer_gets_no_manager(client: TestClient) -> None:
    response = client.put(
        "/v1/customers/nobody/account-manager",
        json={"manager_id": "ana", "reason": "r"},
        headers=ADMIN,
    )

    assert (response.status_code, response.json()["error"]) == (404, "not_found")


@pytest.mark.parametrize(
    "body",
    [{"manager_id": "   ", "reason": "r"}, {"manager_id": "ana", "reason": ""}, {"reason": "r"}],
)
def test_a_blank_manager_or_reason_is_refused(client: TestClient, body: object) -> None:
    response = client.put("/v1/customers/bob/account-manager", json=body, headers=ADMIN)

    assert (response.status_code, response.json()["error"]) == (422, "invalid_parameter")


def test_a_manager_s_book_lists_stage_flags_and_latest_stage_change(client: TestClient) -> None:
    body = client.get(
        "/v1/account-managers/ana/customers?as_of=2024-06-01T00:00:00Z", headers=READER
    ).json()

    assert body["manager_id"] == "ana"
    [entry] = body["items"]
    assert (entry["customer_id"], entry["relationship_type"], entry["stage"]) == (
        "alice",
        "dedicated_personal_assistance",
        "expansion",
    )
    assert entry["flags"] == ["no_touchpoint_90_days", "complaint_open_14_days"]
    assert entry["latest_stage_change"] == {
        "from_stage": "awareness",
        "to_stage": "expansion",
        "cycle": 1,
        "rule": "repeat-purchase",
        "effective_at": "2024-01-09T12:00:00Z",
    }


def test_a_book_pages_with_a_cursor(
    client: TestClient, recorded: LifecycleApplication, api_settings: Settings
) -> None:
    for customer in ("bob", "carol"):
        recorded.assign_account_manager(customer, "ana", actor="lead", reason="r", at=NOW)
    catch_up(Components(api_settings), app=recorded)

    first = client.get("/v1/account-managers/ana/customers?limit=2", headers=READER).json()
    rest = client.get(
        f"/v1/account-managers/ana/customers?limit=2&cursor={first['next_cursor']}",
        headers=READER,
    ).json()

    assert [e["customer_id"] for e in first["items"] + rest["items"]] == ["alice", "bob", "carol"]
    assert rest["next_cursor"] is None


def test_a_manager_without_customers_has_an_empty_book(client: TestClient) -> None:
    body = client.get("/v1/account-managers/nobody/customers", headers=READER).json()

    assert (body["items"], body["next_cursor"]) == ([], None)


def test_the_list_filters_on_relationship_types(client: TestClient) -> None:
    dedicated = client.get(
        "/v1/customers?relationship_type=dedicated_personal_assistance", headers=READER
    ).json()
    others = client.get(
        "/v1/customers?relationship_type=personal_assistance&relationship_type=transactional",
        headers=READER,
    ).json()

    assert [i["customer_id"] for i in dedicated["items"]] == ["alice"]
    assert [(i["customer_id"], i["relationship_type"]) for i in others["items"]] == [
        ("bob", "transactional"),
        ("carol", "personal_assistance"),
    ]


def test_lifecycle_assign_puts_a_manager_in_charge_and_none_takes_them_off(
    api_settings: Settings, recorded: LifecycleApplication
) -> None:
    store = ["--database-url", api_settings.database_url]
    common = ["--actor", "lead", "--reason", "key account", *store]

    assigned = run_cli("assign", "bob", "--manager", "ben", *common)
    repeated = run_cli("assign", "bob", "--manager", "ben", *common)
    removed = run_cli("assign", "bob", "--none", *common)
    history = run_cli("history", "bob", *store)

    assert (assigned.returncode, repeated.returncode, removed.returncode) == (0, 0, 0)
    assert assigned.stdout.startswith("bob: ben (changed")
    assert "unchanged" in repeated.stdout
    assert removed.stdout.startswith("bob: no account manager (changed")
    assert "AccountManagerAssigned" in history.stdout
    assert "account manager ben off by lead: key account" in history.stdout


def test_lifecycle_assign_names_an_unknown_customer(api_settings: Settings) -> None:
    done = run_cli(
        "assign",
        "nobody",
        "--manager",
        "ben",
        "--actor",
        "lead",
        "--reason",
        "r",
        "--database-url",
        api_settings.database_url,
    )

    assert done.returncode == 2
    assert "no relationship for customer 'nobody'" in done.stderr
