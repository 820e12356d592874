"""Reloading a relationship from a real store reproduces the state that recorded it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecycle.domain.relationship import relationship_id
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.settings import Settings
from tests.unit.test_policy_properties import touchpoints


def state_of(relationship: object) -> dict[str, object]:
    return {k: v for k, v in vars(relationship).items() if k != "_pending_events"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(touchpoints(), min_size=1, max_size=12), min_size=1, max_size=5))
def test_reloading_from_sqlite_reproduces_the_recorded_state(
    batches: list[list[Touchpoint]],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        # A snapshot every 3 events, so reloads go through snapshots too.
        settings_ = Settings(
            database_url=f"sqlite:///{Path(directory) / 'l.db'}", snapshot_interval=3
        )
        writer = Components(settings_).application()
        for batch in batches:
            writer.record_batch(batch)
        recorded = writer.repository.get(relationship_id("cust-1"))  # the writer's own copy
        reader = Components(settings_).application()
        reloaded = reader.relationship("cust-1")
        assert state_of(reloaded) == state_of(recorded)
        writer.close()
        reader.close()
