"""Follow-ups due: thank-you calls, satisfaction checks and anniversaries."""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.integration.projections.conftest import History, Project, day


def _owed(history: History) -> None:
    history("c1", "purchase", 0, amount="1", event_id="p1")
    history("c1", "follow_up", 1, action="thank_you_call")  # closes p1
    history("c1", "purchase", 10, amount="1", event_id="p2")  # nobody called
    history("c2", "follow_up", 4)
    history("c2", "purchase", 3, amount="1", event_id="p3")  # late: the call came after
    history("c3", "follow_up", 1)
    history("c3", "purchase", 2, amount="1", event_id="p4")  # the call came before
    history("c4", "complaint", 0, complaint_id="k1")
    history("c4", "complaint_resolved", 1, complaint_id="k1")
    history("c4", "survey", 3, score=8)  # closes the check of k1
    history("c4", "complaint", 10, complaint_id="k2")
    history("c4", "complaint_resolved", 11, complaint_id="k2")
    history("c5", "purchase", 0, amount="1", event_id="p5")
    history("c5", "cancellation", 1)  # dissolved: owed nothing


def test_lists_open_tasks_due_before_a_day_in_due_order(history: History, project: Project) -> None:
    _owed(history)

    due, _ = project(["follow_ups"])["follow_ups"].due(
        before=date(2024, 1, 31), since=date(2024, 1, 1)
    )

    assert [(d.customer_id, d.kind, d.ref, d.due_at) for d in due] == [
        ("c3", "thank_you_call", "p4", day(4)),
        ("c1", "thank_you_call", "p2", day(12)),
        ("c4", "satisfaction_check", "k2", day(18)),
    ]


def test_tasks_due_later_are_not_listed_yet(history: History, project: Project) -> None:
    _owed(history)

    due, _ = project(["follow_ups"])["follow_ups"].due(
        before=date(2024, 1, 10), since=date(2024, 1, 1)
    )

    assert [d.ref for d in due] == ["p4"]


def test_anniversaries_fall_yearly_on_the_day_the_relationship_started(
    history: History, project: Project
) -> None:
    _owed(history)

    due, _ = project(["follow_ups"])["follow_ups"].due(
        before=date(2025, 1, 10), since=date(2025, 1, 1), kinds=["anniversary"]
    )

    assert [(d.customer_id, d.due_at.date(), d.ref) for d in due] == [
        ("c1", date(2025, 1, 1), "1"),
        ("c4", date(2025, 1, 1), "1"),
        ("c3", date(2025, 1, 2), "1"),
        ("c2", date(2025, 1, 5), "1"),
    ]


def test_a_start_on_29_february_is_remembered_on_the_28th_in_other_years(
    history: History, project: Project
) -> None:
    history("leap", "inquiry", 59)  # 2024-02-29

    due, _ = project(["follow_ups"])["follow_ups"].due(
        before=date(2025, 3, 1), since=date(2025, 2, 27), kinds=["anniversary"]
    )

    assert [(d.customer_id, d.due_at.date()) for d in due] == [("leap", date(2025, 2, 28))]


def test_pages_continue_after_the_cursor(history: History, project: Project) -> None:
    _owed(history)
    follow_ups = project(["follow_ups"])["follow_ups"]

    first, _ = follow_ups.due(before=date(2024, 1, 31), since=date(2024, 1, 1), limit=1)
    rest, _ = follow_ups.due(
        before=date(2024, 1, 31), since=date(2024, 1, 1), after=first[0].key, limit=10
    )

    assert [d.ref for d in first + rest] == ["p4", "p2", "k2"]


def test_anniversaries_page_in_order_whatever_the_size_of_a_page(
    history: History, project: Project
) -> None:
    for number, start in enumerate((58, 59, 58, 59, 60, 31, 58, 365)):  # 28 and 29 February
        history(f"c{number}", "inquiry", start)
    follow_ups = project(["follow_ups"])["follow_ups"]
    window = {"before": date(2026, 3, 1), "since": date(2025, 2, 1)}

    whole, _ = follow_ups.due(**window, kinds=["anniversary"], limit=100)
    paged: list[Any] = []
    while page := follow_ups.due(
        **window, kinds=["anniversary"], limit=3, after=paged[-1].key if paged else None
    )[0]:
        paged.extend(page)

    assert [(d.due_at.date(), d.customer_id) for d in whole][:7] == [
        (date(2025, 2, 1), "c5"),
        (date(2025, 2, 28), "c0"),
        (date(2025, 2, 28), "c1"),
        (date(2025, 2, 28), "c2"),
        (date(2025, 2, 28), "c3"),
        (date(2025, 2, 28), "c6"),
        (date(2025, 3, 1), "c4"),
    ]
    assert len(whole) == 14
    assert [d.key for d in paged] == [d.key for d in whole]
