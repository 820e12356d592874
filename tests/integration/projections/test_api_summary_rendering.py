"""The read API renders relationship summaries straight from the stored rows: the same
JSON, byte for byte, as the response models built from ``SummaryRow``'s reading surface,
for every customer of a simulated population at several times, on SQLite and
PostgreSQL; and the pages it reads are those a filter over every row would give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lifecycle.service.application import LifecycleApplication
from lifecycle.service.importer import import_lines
from lifecycle.settings import Settings
from lifecycle.simulation import as_json_lines, simulate_population
from projections.api import models
from projections.api.summaries import SummaryRenderer
from projections.at_risk import FLAGS, LIKELY_LAPSED
from projections.summary import RELATIONSHIP_TYPES, SummaryRow, SummaryView
from tests.integration.projections.conftest import Project

END = datetime(2024, 7, 1, tzinfo=UTC)
TIMES = (END - timedelta(days=300), END, END + timedelta(days=400))


@pytest.fixture
def summaries(app: LifecycleApplication, settings: Settings, project: Project) -> SummaryView:
    messages = simulate_population(150, end=END, years=2, seed=3)
    lines = as_json_lines(messages)
    import_lines(app, lines, rules=settings.message_rules, batch_size=500, clock=lambda: END)
    app.sweep(END)
    customers = sorted({m["customer_id"] for m in messages})
    for customer in customers[:5]:
        app.assign_account_manager(customer, "ana", actor="lead", reason="key", at=END)
    app.assign_account_manager(customers[0], None, actor="lead", reason="moved", at=END)
    view: SummaryView = project(["summary"])["summary"]
    return view


def _from_summary_row(row: SummaryRow, as_of: datetime) -> models.RelationshipSummary:
    flags = row.flags(as_of)
    return models.RelationshipSummary(
        customer_id=row.customer_id,
        relationship_id=row.relationship_id,
        version=row.version,
        stage=row.stage,
        stage_since=row.stage_since,
        cycle=row.cycle,
        started_at=row.started_at,
        touchpoints=row.touchpoints,
        first_touchpoint_at=row.first_touchpoint_at,
        last_touchpoint_at=row.last_touchpoint_at,
        counts_by_kind=dict(sorted(row.kind_counts.items())),
        counts_by_phase=row.phase_counts,
        purchases=row.purchases,
        revenue=row.revenue,
        surveys=row.survey_count,
        latest_survey_score=row.latest_survey_score,
        mean_survey_score=row.mean_survey_score,
        open_complaints=len(row.open_complaints),
        oldest_open_complaint_at=row.oldest_open_complaint_at,
        service_mode=row.service_mode,
        touchpoints_by_service_mode=row.service_modes,
        at_risk=bool(flags),
        flags=flags,
        relationship_type=row.relationship_type,
        account_manager=row.account_manager,
    )


@pytest.mark.parametrize("as_of", TIMES, ids=["before", "at_end", "long_after"])
def test_a_page_renders_as_the_response_model_would(
    summaries: SummaryView, as_of: datetime
) -> None:
    stored, position = summaries.page_records(
        as_of=as_of, limit=1_000, columns=SummaryRenderer.COLUMNS
    )
    rows, _ = summaries.page(as_of=as_of, limit=1_000)

    rendered = SummaryRenderer(summaries, as_of).page(stored, position or 0, "next")

    expected = models.SummaryPage(
        position=position or 0,
        as_of=as_of,
        items=[_from_summary_row(row, as_of) for row in rows],
        next_cursor="next",
    )
    assert rendered == expected.model_dump_json().encode()


def test_one_summary_renders_as_the_response_model_would(summaries: SummaryView) -> None:
    customer = summaries.page(as_of=END, limit=1)[0][0].customer_id
    stored, position = summaries.record(customer, SummaryRenderer.COLUMNS)
    row, _ = summaries.summary(customer)
    assert row is not None

    rendered = SummaryRenderer(summaries, END).one(stored, position or 0)

    expected = models.SummaryResponse(
        position=position or 0, as_of=END, relationship=_from_summary_row(row, END)
    )
    assert rendered == expected.model_dump_json().encode()


def test_the_population_raises_every_flag_and_reaches_every_stage(
    summaries: SummaryView,
) -> None:
    rows, _ = summaries.page(as_of=END, limit=1_000)

    raised = {flag for as_of in TIMES for row in rows for flag in row.flags(as_of)}
    # likely_lapsed is judged on the analytics fit's p_alive, which a SummaryRow does not
    # know (tests/e2e/read/test_api_predictions.py raises it).
    assert raised == set(FLAGS) - {LIKELY_LAPSED}
    assert {row.stage for row in rows} == {
        "exploration",
        "awareness",
        "expansion",
        "commitment",
        "dissolution",
    }
    assert {row.relationship_type for row in rows} == set(RELATIONSHIP_TYPES)


@pytest.mark.parametrize(
    "stages",
    [["commitment"], ["expansion", "commitment"], ["dissolution", "expansion", "dissolution"]],
)
@pytest.mark.parametrize("at_risk", [None, True, False])
def test_a_page_of_several_stages_is_the_filtered_rows_in_customer_order(
    summaries: SummaryView, stages: list[str], at_risk: bool | None
) -> None:
    everyone, _ = summaries.page(as_of=END, limit=1_000)
    wanted = [
        row.customer_id
        for row in everyone
        if row.stage in stages and (at_risk is None or bool(row.flags(END)) == at_risk)
    ]
    after = wanted[2]

    page, _ = summaries.page_records(
        as_of=END, stages=stages, at_risk=at_risk, after=after, limit=5, columns=["customer_id"]
    )

    assert [row["customer_id"] for row in page] == wanted[3:8]
