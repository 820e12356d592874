"""How a rebuild shares read models between worker processes."""

from __future__ import annotations

from projections.bootstrap import READ_MODELS
from projections.rebuild import balanced_shares


def test_one_worker_rebuilds_every_read_model() -> None:
    assert balanced_shares(READ_MODELS, 1) == [list(READ_MODELS)]


def test_shares_are_never_more_than_the_read_models() -> None:
    assert len(balanced_shares(READ_MODELS[:2], 8)) == 2


def test_every_read_model_is_in_exactly_one_share_in_the_registry_order() -> None:
    shares = balanced_shares(READ_MODELS, 2)

    assert sorted(m.name for share in shares for m in share) == sorted(m.name for m in READ_MODELS)
    for share in shares:
        assert share == [m for m in READ_MODELS if m in share]


def test_shares_are_balanced_by_rebuild_cost() -> None:
    costs = sorted(sum(m.rebuild_cost for m in share) for share in balanced_shares(READ_MODELS, 2))

    assert costs[1] - costs[0] <= max(m.rebuild_cost for m in READ_MODELS)
