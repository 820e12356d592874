"""The policy in the log (Contract 6), on the aggregate alone: versions only increase,
a version's text never changes, and adopting the adopted policy changes nothing."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest

from lifecycle.domain.errors import PolicyNotAdoptable
from lifecycle.domain.policy import PolicyText
from lifecycle.domain.policy_stream import POLICY_STREAM_ID, PolicyStream
from lifecycle.domain.streams import stream_id
from tests.builders import DAY_ZERO

V1 = PolicyText.default()
V2 = PolicyText.parse("version = 2\n[rules.engaged]\ntouchpoints = 1\n", "v2.toml")


def stream_with(*documents: PolicyText) -> PolicyStream:
    stream = PolicyStream(started_at=DAY_ZERO)
    for day, document in enumerate(documents):
        stream.adopt(document, actor="ana", reason=f"day {day}", at=DAY_ZERO + timedelta(day))
    return stream


def test_the_policy_stream_has_its_fixed_id() -> None:
    assert stream_with(V1).id == POLICY_STREAM_ID == stream_id("policy")


def test_an_adoption_records_version_text_hash_actor_reason_and_time() -> None:
    stream = stream_with(V1)
    adopted: Any = stream.pending_events[-1]
    assert type(adopted).__name__ == "PolicyAdopted"
    assert (adopted.version, adopted.text, adopted.actor, adopted.reason) == (
        1,
        V1.text,
        "ana",
        "day 0",
    )
    assert adopted.sha256 == hashlib.sha256(V1.text.encode()).hexdigest()
    assert adopted.adopted_at == DAY_ZERO


def test_a_newer_version_is_adopted_and_in_force() -> None:
    stream = stream_with(V1, V2)
    assert [a.version for a in stream.adoptions] == [1, 2]
    assert stream.adopted.document().policy.rules.engaged.touchpoints == 1


def test_adopting_the_adopted_policy_again_changes_nothing() -> None:
    stream = stream_with(V1, V2)
    events = len(stream.pending_events)
    assert not stream.adopt(V2, actor="ben", reason="again", at=DAY_ZERO)
    assert len(stream.pending_events) == events


def test_an_older_version_is_refused() -> None:
    with pytest.raises(PolicyNotAdoptable, match="versions only increase"):
        stream_with(V1, V2).adopt(V1, actor="ana", reason="back", at=DAY_ZERO)


def test_a_version_adopted_with_other_text_is_refused() -> None:
    edited = PolicyText.parse(V2.text + "\n[rules.referral]\nenabled = false\n", "edited.toml")
    with pytest.raises(PolicyNotAdoptable, match="other text"):
        stream_with(V1, V2).adopt(edited, actor="ana", reason="sneaky", at=DAY_ZERO)


def test_a_comment_is_part_of_the_text_that_is_adopted() -> None:
    commented = PolicyText.parse("# why\n" + V2.text, "commented.toml")
    assert commented.sha256 != V2.sha256
    assert commented.policy == V2.policy


def test_the_sample_candidate_policy_is_shipped_as_version_2() -> None:
    candidate = PolicyText.builtin("candidate-example.toml", "sample")
    assert candidate.version == 2
    assert candidate.policy != V1.policy
