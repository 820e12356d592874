"""Complaints and inquiries: cases opened and closed, in any order of arrival."""

from __future__ import annotations

from tests.integration.projections.conftest import History, Project, day


def _complaints(history: History) -> None:
    history("c1", "complaint", 0, channel="phone", complaint_id="k1", reason="late")
    history("c1", "complaint_resolved", 2, complaint_id="k1")
    history("c1", "complaint", 10, complaint_id="k2")
    history("c2", "complaint_resolved", 5, complaint_id="k3")
    history("c2", "complaint", 4, complaint_id="k3")  # recorded after its resolution
    history("c2", "complaint", 20, complaint_id="k4")
    history("c2", "complaint", 18, complaint_id="k4", reason="again")  # late duplicate
    history("c3", "complaint_resolved", 1, complaint_id="k5")  # never raised


def test_complaints_are_open_until_resolved_whatever_arrives_first(
    history: History, project: Project
) -> None:
    _complaints(history)
    complaints = project(["complaints"])["complaints"]

    opened, _ = complaints.cases(status="open")
    closed, _ = complaints.cases(status="closed")

    assert [(c.customer_id, c.ref, c.opened_at) for c in opened] == [
        ("c1", "k2", day(10)),
        ("c2", "k4", day(18)),
    ]
    assert [(c.customer_id, c.ref, c.duration.total_seconds() / 3600) for c in closed] == [
        ("c1", "k1", 48.0),
        ("c2", "k3", 24.0),
    ]
    assert next(c for c in opened if c.ref == "k4").note == "again"


def test_complaint_figures_give_resolution_times_and_the_oldest_open_age(
    history: History, project: Project
) -> None:
    _complaints(history)

    stats = project(["complaints"])["complaints"].stats(as_of=day(30))

    assert (stats.total, stats.open, stats.closed) == (4, 2, 2)
    assert (stats.median_hours, stats.mean_hours) == (36.0, 36.0)
    assert stats.p90_hours is not None and round(stats.p90_hours, 6) == 45.6
    assert stats.oldest_open_days == 20.0


def test_complaints_page_in_customer_order_after_a_cursor(
    history: History, project: Project
) -> None:
    _complaints(history)
    complaints = project(["complaints"])["complaints"]

    first, _ = complaints.cases(limit=2)
    rest, _ = complaints.cases(after=(first[-1].customer_id, first[-1].ref), limit=10)

    assert [(c.customer_id, c.ref) for c in first + rest] == [
        ("c1", "k1"),
        ("c1", "k2"),
        ("c2", "k3"),
        ("c2", "k4"),
    ]


def test_an_inquiry_is_answered_by_the_first_response_naming_it(
    history: History, project: Project
) -> None:
    history("c1", "inquiry", 0, event_id="q1")
    history("c1", "response", 0.25, in_reply_to="q1")
    history("c1", "response", 1, in_reply_to="q1")
    history("c1", "inquiry", 1, event_id="q2")
    history("c2", "response", 3, in_reply_to="q3")  # recorded before its inquiry
    history("c2", "inquiry", 2.5, event_id="q3")
    history("c2", "response", 4)  # names no inquiry

    inquiries = project(["inquiries"])["inquiries"]
    threads, _ = inquiries.cases()
    stats = inquiries.stats(as_of=day(5))

    assert [(t.ref, t.duration and t.duration.total_seconds() / 3600) for t in threads] == [
        ("q1", 6.0),
        ("q2", None),
        ("q3", 12.0),
    ]
    assert (stats.total, stats.open, stats.closed, stats.median_hours) == (3, 1, 2, 9.0)


def test_the_figures_of_every_case_follow_the_position(history: History, project: Project) -> None:
    _complaints(history)
    complaints = project(["complaints"])["complaints"]
    before = complaints.stats(as_of=day(30))
    history("c3", "complaint", 29, complaint_id="k6")
    project(["complaints"])

    after = complaints.stats(as_of=day(30))

    assert (before.total, before.open) == (4, 2)
    assert (after.total, after.open, after.oldest_open_days) == (5, 3, 20.0)
