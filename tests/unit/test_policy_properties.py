"""Properties of Contract 2 over any sequence of touchpoints."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lifecycle.domain.policy import Policy
from lifecycle.domain.relationship import Relationship
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Kind, Stage
from tests.builders import touchpoint

POLICY = Policy.default()

RULE_MOVES = {
    "first-purchase": ("exploration", "awareness"),
    "engaged": ("exploration", "awareness"),
    "repeat-purchase": ("awareness", "expansion"),
    "referral": ("awareness", "expansion"),
    "loyal": ("expansion", "commitment"),
    "renewal": ("expansion", "commitment"),
    "reactivation": ("dissolution", "exploration"),
}


@st.composite
def touchpoints(draw: st.DrawFn) -> Touchpoint:
    kind = draw(st.sampled_from(list(Kind)))
    attributes: dict[str, object] = {}
    if kind in (Kind.COMPLAINT, Kind.COMPLAINT_RESOLVED):
        attributes["complaint_id"] = draw(st.sampled_from(["c-1", "c-2", "c-3"]))
    if kind is Kind.SURVEY:
        attributes["score"] = draw(st.integers(0, 10))
    return touchpoint(
        kind.value,
        draw(st.floats(0, 800, allow_nan=False)),
        # A small pool of ids makes second deliveries of the same event likely.
        event_id=f"e-{draw(st.integers(0, 60))}",
        **attributes,
    )


histories = st.lists(touchpoints(), min_size=1, max_size=60)


def record(history: list[Touchpoint]) -> Relationship:
    """The relationship after ``history``, a second delivery of an event id passed over
    as the application does (tests/integration/test_application.py)."""
    relationship = Relationship(customer_id="cust-1", started_at=history[0].occurred_at)
    recorded: set[str] = set()
    for each in history:
        if each.event_id not in recorded:
            recorded.add(each.event_id)
            relationship.record_touchpoint(each, POLICY)
    return relationship


@settings(max_examples=300, deadline=None)
@given(histories)
def test_the_stage_history_is_always_a_valid_path_of_contract_2(history: list[Touchpoint]) -> None:
    relationship = record(history)
    stage, cycle = Stage.EXPLORATION.value, 1
    for change in relationship.pending_events:
        if not isinstance(change, Relationship.StageChanged):
            continue
        assert change.from_stage == stage
        if change.rule == "cancelled":
            assert stage != Stage.DISSOLUTION.value
            assert change.to_stage == Stage.DISSOLUTION.value
        else:
            assert (change.from_stage, change.to_stage) == RULE_MOVES[change.rule]
        if change.rule == "reactivation":
            assert change.cycle == cycle + 1
        else:
            assert change.cycle == cycle
        stage, cycle = change.to_stage, change.cycle
    assert (relationship.stage.value, relationship.cycle) == (stage, cycle)


@settings(max_examples=300, deadline=None)
@given(histories)
def test_after_each_touchpoint_no_rule_is_left_to_fire(history: list[Touchpoint]) -> None:
    relationship = record(history)
    assert POLICY.decide(relationship.cycle_facts()) is None
