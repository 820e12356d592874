"""The command line names the read models without loading them: the names it shows are
the read models the wiring runs."""

from __future__ import annotations

from projections.names import READ_MODEL_NAMES
from projections.wiring import READ_MODELS


def test_the_names_the_command_line_shows_are_the_read_models_in_their_order() -> None:
    assert tuple(model.name for model in READ_MODELS) == READ_MODEL_NAMES
