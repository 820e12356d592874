"""Group commit: requests that arrive while a batch is being written share the next
transaction, each answered with its own statuses, on a real store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.service.application import BatchOutcome, LifecycleApplication
from lifecycle.service.group_commit import GroupCommit, Recorded
from tests.builders import touchpoint


class HeldFirstBatch:
    """The application's own ``record_batch``, the first call held until released: a
    write in flight while other requests arrive."""

    def __init__(self, app: LifecycleApplication) -> None:
        self.record_batch: Callable[..., BatchOutcome] = app.record_batch
        self.release = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def __call__(self, touchpoints: Sequence[Touchpoint], tracking: Any = None) -> BatchOutcome:
        self.batches.append(len(touchpoints))
        if len(self.batches) == 1:
            self.entered.set()
            self.release.wait(30)
        return self.record_batch(touchpoints, tracking)


@pytest.fixture
def held(app: LifecycleApplication, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldFirstBatch]:
    holding = HeldFirstBatch(app)
    monkeypatch.setattr(app, "record_batch", holding)
    yield holding
    holding.release.set()


def _in_threads(commit: GroupCommit, requests: list[list[Touchpoint]]) -> list[Any]:
    answers: list[Any] = [None] * len(requests)

    def send(number: int) -> None:
        try:
            answers[number] = commit.record(requests[number])
        except Exception as error:
            answers[number] = error

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(requests))]
    for thread in threads:
        thread.start()
    return [threads, answers]


def _wait_queued(commit: GroupCommit, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(commit._pending) < count:  # the requests are waiting for the write in flight
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _sent_during_a_held_write(
    app: LifecycleApplication, held: HeldFirstBatch, requests: list[list[Touchpoint]]
) -> list[Any]:
    """The answers to ``requests``, sent while a first write is held and all queued behind
    it, once that write is released."""
    commit = GroupCommit(app)
    first, _ = _in_threads(commit, [[touchpoint("inquiry", customer="c0")]])
    held.entered.wait(30)
    threads, answers = _in_threads(commit, requests)
    _wait_queued(commit, len(requests))

    held.release.set()
    for thread in [*first, *threads]:
        thread.join(30)
    return answers


def test_requests_arriving_during_a_write_share_the_next_transaction(
    app: LifecycleApplication, held: HeldFirstBatch
) -> None:
    later = [[touchpoint("inquiry", customer=f"c{n}")] for n in range(1, 4)]

    answers = _sent_during_a_held_write(app, held, later)

    assert held.batches == [1, 3]
    assert all(isinstance(answer, Recorded) for answer in answers)
    assert [answer.statuses for answer in answers] == [["recorded"]] * 3
    assert len({answer.position for answer in answers}) == 1
    assert answers[0].position == app.recorder.max_notification_id()


def test_a_touchpoint_sent_twice_in_one_group_is_recorded_once(
    app: LifecycleApplication, held: HeldFirstBatch
) -> None:
    same = touchpoint("purchase", customer="c1", event_id="twice")

    answers = _sent_during_a_held_write(app, held, [[same], [same]])

    assert sorted(answer.statuses[0] for answer in answers) == ["duplicate", "recorded"]


def test_a_group_that_fails_fails_every_request_in_it(
    app: LifecycleApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(touchpoints: Sequence[Touchpoint], tracking: Any = None) -> BatchOutcome:
        raise RuntimeError("the store went away")

    monkeypatch.setattr(app, "record_batch", refuse)
    commit = GroupCommit(app)

    threads, answers = _in_threads(commit, [[touchpoint("inquiry")], [touchpoint("trial")]])
    for thread in threads:
        thread.join(30)

    assert [str(answer) for answer in answers] == ["the store went away"] * 2
