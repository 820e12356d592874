"""The read API as downstream services use it: over HTTP (in-process ASGI), against
read models projected from a small recorded history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lifecycle.domain.vocabulary import Stage
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.api import create_app
from projections.service import catch_up
from tests.integration.projections.conftest import History, day

KEYS = {
    "reader-key": "reader",
    "auditor-key": "auditor",
    "admin-key": "admin",
    "publisher-key": "publisher",
}
READER = {"Authorization": "Bearer reader-key"}
AUDITOR = {"Authorization": "Bearer auditor-key"}
ADMIN = {"Authorization": "Bearer admin-key"}
PUBLISHER = {"Authorization": "Bearer publisher-key"}


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'lifecycle.db'}",
        log_format="json",
        api_keys=KEYS,
        api_wait_seconds=0.3,
        api_ready_max_lag=2,
    )


@pytest.fixture
def recorded(api_settings: Settings) -> Iterator[LifecycleApplication]:
    app = Components(api_settings).application()
    history = History(app)
    history("alice", "inquiry", 0, event_id="q1")
    history("alice", "response", 0.5, in_reply_to="q1")
    history("alice", "purchase", 1, amount="10", category="books", event_id="p1")
    history("alice", "purchase", 8, amount="30", category="music")
    history("alice", "complaint", 9, complaint_id="k1", reason="broken")
    history("bob", "purchase", 2, amount="5", category="books")
    history("bob", "cancellation", 3, reason="price")
    history("carol", "survey", 4, score=3)
    app.change_stage("carol", Stage.AWARENESS, actor="ana", reason="met at fair", at=day(5))
    app.assign_account_manager("alice", "ana", actor="lead", reason="key account", at=day(10))
    catch_up(Components(api_settings), app=app)
    yield app
    app.close()


@pytest.fixture
def client(api_settings: Settings, recorded: LifecycleApplication) -> Iterator[TestClient]:
    with TestClient(create_app(Components(api_settings).read_side())) as test_client:
        yield test_client
