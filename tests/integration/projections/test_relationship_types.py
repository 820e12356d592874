"""Relationship types and account managers in the summary (Contract 7), and a summary
table of an earlier release's layout projected again when opened."""

from __future__ import annotations

import pytest

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.service import catch_up
from projections.summary import Summary, SummaryView
from projections.wiring import close_view
from tests.integration.projections.conftest import History, Project, day


def _type_of(project: Project, customer: str) -> str | None:
    row, _ = project(["summary"])["summary"].summary(customer)
    assert row is not None
    return row.relationship_type


def test_purchases_and_nothing_that_builds_a_relationship_are_transactional(
    history: History, project: Project
) -> None:
    history("c1", "marketing", 0, channel="email")
    history("c1", "purchase", 1, channel="phone", amount="10")
    history("c1", "delivery", 2, channel="automated")

    assert _type_of(project, "c1") == "transactional"


@pytest.mark.parametrize(
    "kind", ["inquiry", "response", "survey", "follow_up", "community", "sales_contact"]
)
def test_a_touchpoint_that_builds_a_relationship_makes_it_the_service_mode_of_its_channels(
    history: History, project: Project, kind: str
) -> None:
    history("c1", "purchase", 0, channel="web", amount="10")
    history("c1", "purchase", 1, channel="web", amount="10")
    history("c1", kind, 2, channel="web", **({"score": 8} if kind == "survey" else {}))

    assert _type_of(project, "c1") == "self_service"


def test_without_a_purchase_the_type_is_the_service_mode(
    history: History, project: Project
) -> None:
    history("c1", "marketing", 0, channel="community")

    assert _type_of(project, "c1") == "community"


def test_an_account_manager_makes_it_dedicated_personal_assistance_whatever_the_channels(
    history: History, project: Project, app: LifecycleApplication
) -> None:
    history("c1", "purchase", 0, channel="web", amount="10")

    app.assign_account_manager("c1", "ana", actor="lead", reason="key account", at=day(1))
    row, _ = project(["summary"])["summary"].summary("c1")

    assert row is not None
    assert (row.account_manager, row.relationship_type) == ("ana", "dedicated_personal_assistance")


def test_taking_the_manager_off_gives_the_type_back_to_the_channels(
    history: History, project: Project, app: LifecycleApplication
) -> None:
    history("c1", "purchase", 0, channel="web", amount="10")
    app.assign_account_manager("c1", "ana", actor="lead", reason="key account", at=day(1))
    project(["summary"])

    app.assign_account_manager("c1", None, actor="lead", reason="downsized", at=day(2))
    row, _ = project(["summary"])["summary"].summary("c1")

    assert row is not None
    assert (row.account_manager, row.relationship_type) == (None, "transactional")


def test_the_row_keeps_the_latest_stage_change(history: History, project: Project) -> None:
    history("c1", "purchase", 0, amount="5")
    history("c1", "cancellation", 5, reason="price")

    row, _ = project(["summary"])["summary"].summary("c1")

    assert row is not None
    assert (row.previous_stage, row.stage, row.stage_rule, row.stage_since) == (
        "awareness",
        "dissolution",
        "cancelled",
        day(5),
    )


def test_a_manager_s_book_is_the_customers_in_their_charge_in_customer_order(
    history: History, project: Project, app: LifecycleApplication
) -> None:
    for customer in ("c3", "c1", "c2", "c4"):
        history(customer, "inquiry", 0)
    for customer in ("c3", "c1", "c4"):
        app.assign_account_manager(customer, "ana", actor="lead", reason="region", at=day(1))
    app.assign_account_manager("c4", "ben", actor="lead", reason="moved", at=day(2))
    view: SummaryView = project(["summary"])["summary"]

    first, _ = view.book_records("ana", after=None, limit=1, columns=["customer_id"])
    rest, _ = view.book_records("ana", after="c1", limit=10, columns=["customer_id"])

    assert [row["customer_id"] for row in first + rest] == ["c1", "c3"]


def test_a_list_filters_on_the_relationship_type(
    history: History, project: Project, app: LifecycleApplication
) -> None:
    history("c1", "purchase", 0, channel="web", amount="10")
    history("c2", "inquiry", 0, channel="phone")
    history("c3", "inquiry", 0, channel="web")
    app.assign_account_manager("c3", "ana", actor="lead", reason="region", at=day(1))
    view: SummaryView = project(["summary"])["summary"]

    rows, _ = view.page(
        as_of=day(2), relationship_types=["transactional", "dedicated_personal_assistance"]
    )

    assert [row.customer_id for row in rows] == ["c1", "c3"]


def _make_the_table_of_an_earlier_layout(view: SummaryView) -> None:
    """What a release before account managers left behind: no manager, type, nor the
    latest change's from-stage and rule."""
    table = view.table("relationships")
    with view._write_transaction() as cursor:
        for column in ("previous_stage", "stage_rule", "account_manager", "relationship_type"):
            cursor.execute(f"DROP INDEX IF EXISTS {table}_{column}")
            cursor.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


def test_a_summary_of_an_earlier_layout_is_projected_again_from_zero_when_opened(
    history: History, settings: Settings, app: LifecycleApplication
) -> None:
    history("c1", "purchase", 0, amount="5")
    history("c1", "cancellation", 5, reason="price")
    catch_up(Components(settings), ["summary"], app=app)
    old: SummaryView = Components(settings).open_view(Summary)  # type: ignore[assignment]
    _make_the_table_of_an_earlier_layout(old)
    close_view(old)

    reopened: SummaryView = Components(settings).open_view(Summary)  # type: ignore[assignment]
    emptied = (reopened.position(), reopened.summary("c1")[0])
    catch_up(Components(settings), ["summary"], app=app)
    row, position = reopened.summary("c1")
    close_view(reopened)

    assert emptied == (None, None)
    assert position == app.recorder.max_notification_id()
    assert row is not None
    assert (row.previous_stage, row.stage_rule, row.relationship_type) == (
        "awareness",
        "cancelled",
        "transactional",
    )
