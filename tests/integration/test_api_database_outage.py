"""The API over PostgreSQL while its database is away: a publisher is told 503 with
``Retry-After`` (never a 500), and what it sends again once the database is back is
recorded once. (Reads are answered the same way, by the same handler; over a real
outage a read waits out the library's retries of its queries first, about a minute,
which is too long for the default test run.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.persistence.store import Store
from lifecycle.settings import Settings
from projections.api import create_app
from tests.conftest import connections_refused
from tests.kafka_support import touchpoint, wait_until

pytestmark = pytest.mark.postgres

PUBLISHER = {"Authorization": "Bearer publisher-key"}


@pytest.fixture
def settings(postgres_url: str) -> Settings:
    return Settings(
        database_url=postgres_url,
        api_keys={"publisher-key": "publisher"},
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(Components(settings).read_side())) as test_client:
        yield test_client


def test_a_touchpoint_sent_while_the_database_is_away_is_503_and_recorded_when_sent_again(
    client: TestClient, settings: Settings, postgres_server: Any, postgres_url: str
) -> None:
    sent = [touchpoint("outage-1", "outage-event-1", "purchase", 0)]

    with connections_refused(postgres_server, Store.from_url(postgres_url).postgres_dbname):
        away = client.post("/v1/touchpoints", json=sent, headers=PUBLISHER)

    assert away.status_code == 503, away.text
    assert away.headers["Retry-After"] == "1"

    def sent_again() -> bool:
        return client.post("/v1/touchpoints", json=sent, headers=PUBLISHER).status_code == 200

    wait_until(sent_again, what="the touchpoint to be recorded")
    [again] = client.post("/v1/touchpoints", json=sent, headers=PUBLISHER).json()["results"]
    assert again["status"] == "duplicate"
    with closing(Components(settings).application()) as app:
        assert app.relationship("outage-1").touchpoint_count == 1
