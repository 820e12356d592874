"""``policy diff`` over a real store: what it says the candidate would record is what a
fresh store records under the candidate, and it reads the log as a rebuild does."""

from __future__ import annotations

import dataclasses
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecycle.domain.policy import PolicyText
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Stage
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.whatif import diff_policies
from tests.builders import DAY_ZERO, touchpoint
from tests.unit.test_policy_properties import touchpoints
from tests.unit.test_whatif import candidate_texts

CUSTOMERS = ("c1", "c2", "c3", "c4", "c5")


@st.composite
def customer_touchpoints(draw: st.DrawFn) -> Touchpoint:
    customer = draw(st.sampled_from(CUSTOMERS))
    drawn = draw(touchpoints())
    return dataclasses.replace(drawn, customer_id=customer, event_id=f"{customer}-{drawn.event_id}")


populations = st.lists(customer_touchpoints(), min_size=1, max_size=80)
"""Touchpoints of a few customers in arrival order, second deliveries included."""


def recorded_stages(
    url: str, population: list[Touchpoint], policy_file: Path | None
) -> dict[str, str]:
    app = Components(Settings(database_url=url, policy_file=policy_file)).application()
    try:
        for start in range(0, len(population), 7):
            app.record_batch(population[start : start + 7])
        return {
            app.relationship(customer).customer_id: app.relationship(customer).stage.value
            for customer in {t.customer_id for t in population}
        }
    finally:
        app.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(populations, candidate_texts)
def test_diff_says_what_a_fresh_store_records_under_the_candidate(
    population: list[Touchpoint], text: str
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        here = Path(directory)
        candidate_file = here / "candidate.toml"
        candidate_file.write_text(text)
        url = f"sqlite:///{here / 'now' / 'lifecycle.db'}"
        now = recorded_stages(url, population, None)

        found = diff_policies(
            Components(Settings(database_url=url)),
            PolicyText.default(),
            PolicyText.read(candidate_file),
            inactive_at=None,
            workers=1,
        ).comparison

        fresh = recorded_stages(
            f"sqlite:///{here / 'fresh' / 'lifecycle.db'}", population, candidate_file
        )
        differing = {customer: (before, after) for customer, before, after in found.differing}
        assert found.relationships == len(now)
        for customer, stage in now.items():
            assert differing.get(customer, (stage, stage)) == (stage, fresh[customer])


def record_population(app: LifecycleApplication, customers: int) -> None:
    batch = []
    for n in range(customers):
        customer = f"cust-{n:03d}"
        batch += [
            touchpoint("inquiry", n % 7, customer=customer),
            touchpoint("purchase", n % 7 + 1, customer=customer),
            touchpoint("purchase", n % 5 + 3, customer=customer),
        ]
        if n % 9 == 0:
            batch.append(touchpoint("cancellation", 20, customer=customer))
    app.record_batch(batch)


STRICTER = PolicyText.parse(
    "version = 2\n[rules.repeat-purchase]\ndistinct_days = 3\n[rules.inactivity]\ndays = 5\n",
    "candidate.toml",
)


def test_a_diff_shared_between_worker_processes_equals_one_in_a_single_process(
    settings: Settings, app: LifecycleApplication
) -> None:
    record_population(app, 60)
    app.change_stage("cust-001", Stage.COMMITMENT, actor="ana", reason="key", at=DAY_ZERO)
    alone = diff_policies(
        Components(settings), PolicyText.default(), STRICTER, inactive_at=None, workers=1
    )
    shared = diff_policies(
        Components(settings), PolicyText.default(), STRICTER, inactive_at=None, workers=3
    )
    assert shared.parts == 3
    assert shared.comparison == alone.comparison
    assert alone.comparison.differing


def test_inactivity_is_judged_at_the_time_given_and_not_without_one(
    settings: Settings, app: LifecycleApplication
) -> None:
    record_population(app, 10)
    wiring = Components(settings)
    later = DAY_ZERO + timedelta(days=30)

    without = diff_policies(wiring, PolicyText.default(), STRICTER, inactive_at=None)
    judged = diff_policies(wiring, PolicyText.default(), STRICTER, inactive_at=later)

    assert ("expansion", "dissolution") not in without.comparison.matrix
    assert judged.comparison.stage_counts()["dissolution"] == (2, 10)


def test_a_diff_writes_nothing(settings: Settings, app: LifecycleApplication) -> None:
    record_population(app, 10)
    head = app.recorder.max_notification_id()
    diff_policies(Components(settings), PolicyText.default(), STRICTER, inactive_at=None, workers=2)
    assert app.recorder.max_notification_id() == head
