"""The console's pages over HTTP, without a browser: the shell needs no key and holds
nothing; every page's content is rendered for the key's role, or refused as the API
refuses."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.e2e.read.conftest import ADMIN, AUDITOR, PUBLISHER, READER

PAGES = [
    "/console",
    "/console/customers?q=a",
    "/console/customers/alice",
    "/console/customers/alice?at=2024-01-05",
    "/console/managers?manager=ana",
    "/console/funnel",
]


def _fragment(page: str) -> str:
    return page.replace("/console", "/console/fragments", 1)


@pytest.mark.parametrize("page", PAGES)
def test_the_shell_of_every_page_is_the_same_and_needs_no_key(
    client: TestClient, page: str
) -> None:
    response = client.get(page)

    assert response.status_code == 200
    assert response.text == client.get("/console").text
    assert "/console/static/console.js" in response.text
    assert "alice" not in response.text
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_s_content_needs_a_key(client: TestClient, page: str) -> None:
    response = client.get(_fragment(page))

    assert (response.status_code, response.json()["error"]) == (401, "unauthorized")


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("headers", [READER, AUDITOR, ADMIN], ids=["reader", "auditor", "admin"])
def test_every_role_that_reads_sees_every_page(
    client: TestClient, page: str, headers: dict[str, str]
) -> None:
    response = client.get(_fragment(page), headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Console-Role"] in ("reader", "auditor", "admin")


def test_a_publisher_is_an_upstream_system_not_a_person(client: TestClient) -> None:
    response = client.get(_fragment("/console"), headers=PUBLISHER)

    assert (response.status_code, response.json()["error"]) == (403, "forbidden")


def test_the_timeline_is_for_auditors_and_admins(client: TestClient) -> None:
    pages = {
        role: client.get(_fragment("/console/customers/alice"), headers=headers).text
        for role, headers in (("reader", READER), ("auditor", AUDITOR), ("admin", ADMIN))
    }

    assert 'id="timeline"' not in pages["reader"]
    assert 'id="timeline-withheld"' in pages["reader"]
    assert 'id="timeline"' in pages["auditor"]
    assert 'id="timeline"' in pages["admin"]


def test_the_stage_at_a_date_is_the_one_in_force_at_the_end_of_that_day(
    client: TestClient,
) -> None:
    page = client.get(_fragment("/console/customers/alice?at=2024-01-02"), headers=READER).text

    assert 'id="stage-at" data-stage="awareness"' in page


def test_an_unknown_customer_s_page_is_not_found(client: TestClient) -> None:
    response = client.get(_fragment("/console/customers/nobody"), headers=READER)

    assert (response.status_code, response.json()["error"]) == (404, "not_found")


def test_what_a_person_typed_is_escaped_in_the_page(client: TestClient) -> None:
    response = client.get(_fragment("/console/customers?q=%3Cscript%3E"), headers=READER)

    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text


def test_only_the_console_s_own_files_are_served(client: TestClient) -> None:
    assert client.get("/console/static/console.css").status_code == 200
    assert client.get("/console/static/..%2Fpages.py").status_code == 404
    assert client.get("/console/static/pages.py").status_code == 404


def test_the_console_is_not_in_the_api_s_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert not [path for path in paths if path.startswith("/console")]


def test_the_dead_letters_are_for_auditors_and_admins(client: TestClient) -> None:
    response = client.get(_fragment("/console/dead-letters"), headers=READER)

    assert (response.status_code, response.json()["error"]) == (403, "forbidden")


def test_only_admins_re_drive_a_dead_letter(client: TestClient) -> None:
    response = client.post(_fragment("/console/dead-letters/redrive?offset=0"), headers=AUDITOR)

    assert (response.status_code, response.json()["error"]) == (403, "forbidden")
