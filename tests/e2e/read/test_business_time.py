"""Business time (Contract 7): the stage in force at a date, from the CLI and the API, on
a backfill, where every event was recorded today and describes months gone by."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.settings import Settings
from projections.api import create_app
from tests.builders import message
from tests.conftest import run_cli
from tests.e2e.read.conftest import READER

CUSTOMER = "backfill/ä 1"
BACKFILL = [
    message("inquiry", customer_id=CUSTOMER, occurred_at="2024-01-10T09:00:00Z"),
    message("purchase", customer_id=CUSTOMER, occurred_at="2024-02-15T09:00:00Z"),
    message("purchase", customer_id=CUSTOMER, occurred_at="2024-03-20T09:00:00Z"),
    message("cancellation", customer_id=CUSTOMER, occurred_at="2024-06-01T09:00:00Z"),
]


@pytest.fixture
def backfilled(api_settings: Settings, tmp_path: Path) -> datetime:
    """The backfill imported by `lifecycle import`; returns when the import began."""
    feed = tmp_path / "backfill.jsonl"
    feed.write_text("".join(json.dumps(m) + "\n" for m in BACKFILL), encoding="utf-8")
    began = datetime.now(UTC)
    imported = run_cli("import", str(feed), "--database-url", api_settings.database_url)
    assert imported.returncode == 0, imported.stderr
    return began


@pytest.fixture
def client(api_settings: Settings, backfilled: datetime) -> Iterator[TestClient]:
    with TestClient(create_app(Components(api_settings).read_side())) as test_client:
        yield test_client


def _state_at(settings: Settings, time: str) -> dict[str, Any]:
    done = run_cli("state", CUSTOMER, "--at", time, "--database-url", settings.database_url)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _stages(client: TestClient, query: str = "") -> dict[str, Any]:
    response = client.get(f"/v1/customers/{quote(CUSTOMER, safe='')}/stages{query}", headers=READER)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_cli_answers_the_stage_in_force_at_a_business_time(
    api_settings: Settings, backfilled: datetime
) -> None:
    answer = _state_at(api_settings, "2024-03-01T00:00:00Z")

    assert answer == {
        "customer_id": CUSTOMER,
        "at": {
            "time": "2024-03-01T00:00:00+00:00",
            "stage": "awareness",
            "cycle": 1,
            "since": "2024-02-15T09:00:00+00:00",
        },
    }


def test_the_cli_answers_no_stage_before_the_relationship_began(
    api_settings: Settings, backfilled: datetime
) -> None:
    answer = _state_at(api_settings, "2023-12-31T00:00:00Z")

    assert answer["at"] == {
        "time": "2023-12-31T00:00:00+00:00",
        "stage": None,
        "cycle": None,
        "since": None,
    }


def test_recorded_time_knows_nothing_of_a_backfill_before_it_was_recorded(
    api_settings: Settings, backfilled: datetime
) -> None:
    done = run_cli(
        "state",
        CUSTOMER,
        "--as-of",
        "2024-03-01T00:00:00Z",
        "--database-url",
        api_settings.database_url,
    )

    assert done.returncode == 2
    assert "had no relationship recorded" in done.stderr


def test_the_stage_history_has_effective_times_of_then_and_recorded_times_of_now(
    client: TestClient, backfilled: datetime
) -> None:
    body = _stages(client)

    assert [(s["from_stage"], s["to_stage"], s["rule"]) for s in body["stages"]] == [
        ("exploration", "awareness", "first-purchase"),
        ("awareness", "expansion", "repeat-purchase"),
        ("expansion", "dissolution", "cancelled"),
    ]
    assert [s["effective_at"][:10] for s in body["stages"]] == [
        "2024-02-15",
        "2024-03-20",
        "2024-06-01",
    ]
    assert all(datetime.fromisoformat(s["recorded_at"]) >= backfilled for s in body["stages"])
    assert (body["customer_id"], body["at"]) == (CUSTOMER, None)
    assert {s["policy_version"] for s in body["stages"]} == {1}
    assert body["stages"][0]["triggered_by"] == BACKFILL[1]["event_id"]


@pytest.mark.parametrize(
    ("at", "stage", "cycle", "since"),
    [
        ("2024-01-09T00:00:00Z", None, None, None),
        ("2024-01-10T09:00:00Z", "exploration", 1, "2024-01-10T09:00:00Z"),
        ("2024-03-01T00:00:00Z", "awareness", 1, "2024-02-15T09:00:00Z"),
        ("2024-05-31T23:59:59Z", "expansion", 1, "2024-03-20T09:00:00Z"),
        ("2025-01-01T00:00:00Z", "dissolution", 1, "2024-06-01T09:00:00Z"),
    ],
)
def test_the_api_answers_the_stage_in_force_at_a_business_time(
    client: TestClient, at: str, stage: str | None, cycle: int | None, since: str | None
) -> None:
    body = _stages(client, f"?at={quote(at)}")

    assert body["at"] == {"time": at, "stage": stage, "cycle": cycle, "since": since}


def test_the_stages_of_an_unknown_customer_are_not_found(client: TestClient) -> None:
    response = client.get("/v1/customers/nobody/stages", headers=READER)

    assert (response.status_code, response.json()["error"]) == (404, "not_found")
