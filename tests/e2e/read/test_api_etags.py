"""Every answer of the read API is tagged (``ETag``) by what it depends on, and a client
that sends the tag back (``If-None-Match``) while nothing it depends on has changed is
answered 304, without a body."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.service import catch_up
from tests.e2e.read.conftest import ADMIN, AUDITOR, READER
from tests.integration.projections.conftest import History

AS_OF = "as_of=2024-01-11T00:00:00Z"
ROUTES = [
    f"/v1/customers?{AS_OF}",
    f"/v1/customers/alice?{AS_OF}",
    "/v1/customers/alice/purchase-pattern?observation_end=2024-01-31",
    "/v1/funnel",
    f"/v1/complaints?{AS_OF}",
    f"/v1/inquiries?{AS_OF}",
    "/v1/follow-ups?before=2024-02-01&since=2024-01-01",
    "/v1/customers/alice/stages",
    f"/v1/account-managers/ana/customers?{AS_OF}",
    "/v1/customers/alice/history",
    "/v1/customers/alice/state",
    "/v1/projections",
]


def _held(etag: str) -> dict[str, str]:
    return {**ADMIN, "If-None-Match": etag}


@pytest.mark.parametrize("route", ROUTES)
def test_an_answer_the_client_holds_is_answered_304_without_a_body(
    client: TestClient, route: str
) -> None:
    first = client.get(route, headers=ADMIN)

    again = client.get(route, headers=_held(first.headers["ETag"]))

    assert (first.status_code, again.status_code) == (200, 304)
    assert again.content == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["X-Projection-Position"] == first.headers["X-Projection-Position"]


def test_a_new_event_answers_in_full_with_a_new_etag(
    client: TestClient, recorded: LifecycleApplication, api_settings: Settings
) -> None:
    route = f"/v1/customers/alice?{AS_OF}"
    before = client.get(route, headers=ADMIN)
    History(recorded)("alice", "inquiry", 9.5, event_id="later")
    catch_up(Components(api_settings), app=recorded)

    after = client.get(route, headers=_held(before.headers["ETag"]))

    assert after.status_code == 200
    assert after.json()["relationship"]["touchpoints"] == 6
    assert after.headers["ETag"] != before.headers["ETag"]


def test_another_role_is_given_another_etag(client: TestClient) -> None:
    as_reader = client.get("/v1/funnel", headers=READER)
    as_auditor = client.get("/v1/funnel", headers=AUDITOR)

    assert as_reader.json() == as_auditor.json()
    assert as_reader.headers["ETag"] != as_auditor.headers["ETag"]


def test_another_as_of_is_given_another_etag(client: TestClient) -> None:
    earlier = client.get("/v1/customers/alice?as_of=2024-01-11T00:00:00Z", headers=READER)
    later = client.get("/v1/customers/alice?as_of=2024-01-12T00:00:00Z", headers=READER)

    assert earlier.headers["ETag"] != later.headers["ETag"]


def test_an_answer_judged_now_by_default_is_tagged_by_that_moment(client: TestClient) -> None:
    first = client.get("/v1/customers/alice", headers=READER)

    again = client.get("/v1/customers/alice", headers=_held(first.headers["ETag"]))

    assert again.status_code == 200
    assert again.json()["as_of"] != first.json()["as_of"]


def test_a_weak_tag_among_others_is_held_too(client: TestClient) -> None:
    etag = client.get("/v1/funnel", headers=ADMIN).headers["ETag"]

    again = client.get("/v1/funnel", headers=_held(f'"something-else", W/{etag}'))

    assert again.status_code == 304


def test_any_tag_is_held_for_an_answer_that_exists(client: TestClient) -> None:
    found = client.get("/v1/funnel", headers=_held("*"))
    unknown = client.get("/v1/customers/nobody", headers=_held("*"))

    assert (found.status_code, unknown.status_code) == (304, 404)
