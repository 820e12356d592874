"""Customer ids holding '/', '%', spaces, '?', '#' or non-ASCII letters are addressed on
every customer route as one percent-encoded path segment, as RFC 3986 asks of a client;
so are account managers' ids."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.settings import Settings
from projections.api import create_app
from projections.service import catch_up
from tests.conftest import run_cli
from tests.e2e.read.conftest import ADMIN, AUDITOR, READER
from tests.integration.projections.conftest import DAY_ZERO, History

ODD_IDS = [
    "team/alice",
    "a/b/history",
    "50%/off",
    "/leading",
    "trailing/",
    "with space",
    "why?not=1&x",
    "#hash",
    "café/Ünïcode 名前",
]
ROUTES = {
    "": lambda body: body["relationship"]["customer_id"],
    "/purchase-pattern": lambda body: body["customer_id"],
    "/history": lambda body: body["customer_id"],
    "/state": lambda body: body["state"]["customer_id"],
    "/stages": lambda body: body["customer_id"],
}


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    app = Components(api_settings).application()
    history = History(app)
    for customer in ODD_IDS:
        history(customer, "purchase", 1, amount="10", category="books")
    history("a/b", "inquiry", 2)  # its id is where another one's begins
    catch_up(Components(api_settings), app=app)
    app.close()
    with TestClient(create_app(Components(api_settings).read_side())) as test_client:
        yield test_client


def _customer_path(customer: str, route: str) -> str:
    return f"/v1/customers/{quote(customer, safe='')}{route}"


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("customer", ODD_IDS)
def test_a_customer_id_with_a_slash_is_one_encoded_segment_on_every_route(
    client: TestClient, customer: str, route: str
) -> None:
    response = client.get(_customer_path(customer, route), headers=AUDITOR)

    assert response.status_code == 200, response.text
    assert ROUTES[route](response.json()) == customer


def test_an_id_ending_like_a_sub_route_is_still_the_customer_itself(client: TestClient) -> None:
    own = client.get(_customer_path("a/b/history", ""), headers=READER).json()
    prefix = client.get(_customer_path("a/b", "/history"), headers=AUDITOR).json()

    assert own["relationship"]["counts_by_kind"] == {"purchase": 1}
    assert [
        e["data"].get("kind") for e in prefix["events"] if e["type"] == "TouchpointRecorded"
    ] == ["inquiry"]


def test_a_slash_left_unencoded_separates_segments(client: TestClient) -> None:
    response = client.get("/v1/customers/team/alice", headers=READER)

    assert response.status_code == 404


def test_the_list_pages_through_ids_with_slashes(client: TestClient) -> None:
    seen: list[str] = []
    cursor: Any = None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/v1/customers?{query}", headers=READER).json()
        seen.extend(item["customer_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == sorted([*ODD_IDS, "a/b"])


@pytest.mark.parametrize("customer", ODD_IDS)
def test_an_odd_customer_id_gets_an_account_manager_of_an_odd_id_whose_book_lists_it(
    client: TestClient, api_settings: Settings, customer: str
) -> None:
    manager = f"mgr/{customer}"

    put = client.put(
        _customer_path(customer, "/account-manager"),
        json={"manager_id": manager, "reason": "odd"},
        headers=ADMIN,
    )
    catch_up(Components(api_settings))
    book = client.get(
        f"/v1/account-managers/{quote(manager, safe='')}/customers", headers=READER
    ).json()

    assert (put.status_code, put.json()["customer_id"]) == (200, customer)
    assert (book["manager_id"], [e["customer_id"] for e in book["items"]]) == (manager, [customer])


@pytest.mark.parametrize("customer", ["team/alice", "why?not=1&x", "café/Ünïcode 名前"])
def test_the_cli_takes_an_odd_customer_id_as_it_is(api_settings: Settings, customer: str) -> None:
    store = ["--database-url", api_settings.database_url]
    history = History(Components(api_settings).application())
    history(customer, "inquiry", 0)
    history.app.close()

    assigned = run_cli(
        "assign", customer, "--manager", "ana", "--actor", "a", "--reason", "r", *store
    )
    at = run_cli("state", customer, "--at", "2030-01-01T00:00:00Z", *store)

    assert assigned.returncode == 0, assigned.stderr
    assert json.loads(at.stdout)["customer_id"] == customer


def _console_links(client: TestClient, page: str) -> dict[str, str]:
    """The console's customer links on a page: customer id shown -> address linked."""
    fragment = client.get(page.replace("/console", "/console/fragments", 1), headers=READER)
    assert fragment.status_code == 200, fragment.text
    links = re.findall(r'<a class="customer" href="([^"]+)">([^<]+)</a>', fragment.text)
    return {html.unescape(shown): html.unescape(href) for href, shown in links}


@pytest.mark.parametrize("customer", ODD_IDS)
def test_the_console_links_an_odd_customer_id_to_its_own_page(
    client: TestClient, customer: str
) -> None:
    links = _console_links(client, f"/console/customers?{urlencode({'q': customer})}")

    page = client.get(links[customer].replace("/console", "/console/fragments", 1), headers=READER)

    assert page.status_code == 200, page.text
    heading = re.search(r"<h1>(.*?)</h1>", page.text, re.DOTALL)
    assert heading is not None
    assert html.unescape(heading.group(1)).endswith(f"</span> {customer}")


def test_a_manager_s_book_in_the_console_links_odd_customer_ids(
    client: TestClient, api_settings: Settings
) -> None:
    app = Components(api_settings).application()
    for customer in ODD_IDS:
        app.assign_account_manager(customer, "ana", actor="a", reason="r", at=DAY_ZERO)
    app.close()
    catch_up(Components(api_settings))

    links = _console_links(client, "/console/managers?manager=ana")

    assert links == {
        customer: f"/console/customers/{quote(customer, safe='')}" for customer in ODD_IDS
    }
