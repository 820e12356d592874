"""The read API's messages (Contract 4): every response names the projection position it
reflects, and every error has one shape.

The routes build them from the read models' records and the domain's objects by their
attributes (``from_attributes``: ``validation_alias`` names an attribute called otherwise);
``Attributes`` adds what a route knows beside them (the position, …). Relationship
summaries are the exception: ``projections.api.summaries`` renders them straight from the
stored rows, as these models would."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from lifecycle.domain.outbound import RelationshipEvent
from projections.at_risk import FLAGS

Position = Annotated[
    int,
    Field(ge=0, description="last notification id of the event log this answer reflects"),
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", from_attributes=True, validate_by_name=True)


class Attributes:
    """``source``'s attributes, with ``beside`` added: what a response model is validated
    from when a route knows more than the object it answers with holds."""

    def __init__(self, source: object, **beside: Any) -> None:
        self.__dict__.update(beside)
        self._source = source

    def __getattr__(self, name: str) -> Any:
        # Called only for names not in ``beside``.
        return getattr(self._source, name)


class Error(Model):
    error: str = Field(description="a stable code: unauthorized, forbidden, not_found, …")
    message: str
    detail: list[dict[str, Any]] | None = None


class RelationshipSummary(Model):
    customer_id: str
    relationship_id: str
    version: int = Field(description="the relationship's version this summary reflects")
    stage: str
    stage_since: datetime | None
    cycle: int
    started_at: datetime | None
    touchpoints: int
    first_touchpoint_at: datetime | None
    last_touchpoint_at: datetime | None
    counts_by_kind: dict[str, int]
    counts_by_phase: dict[str, int]
    purchases: int
    revenue: dict[str, Decimal] = Field(description="sum of purchase amounts by currency")
    surveys: int
    latest_survey_score: int | None
    mean_survey_score: float | None
    open_complaints: int
    oldest_open_complaint_at: datetime | None
    service_mode: str | None = Field(
        description="personal_assistance, self_service, automated or community: the mode "
        "most touchpoints went through"
    )
    touchpoints_by_service_mode: dict[str, int]
    at_risk: bool
    flags: list[str] = Field(description=", ".join(FLAGS))
    relationship_type: str | None = Field(
        description="dedicated_personal_assistance (an account manager is in charge), "
        "transactional (purchases and nothing that builds a relationship), else the "
        "service mode; null only without a touchpoint"
    )
    account_manager: str | None = Field(description="the account manager in charge, if any")


class SummaryResponse(Model):
    position: Position
    as_of: datetime = Field(description="the time at-risk flags are judged at")
    relationship: RelationshipSummary


class SummaryPage(Model):
    position: Position
    as_of: datetime
    items: list[RelationshipSummary]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: last")


class LatestStageChange(Model):
    from_stage: str
    to_stage: str
    cycle: int
    rule: str
    effective_at: datetime


class BookEntry(Model):
    customer_id: str
    relationship_type: str | None
    stage: str
    stage_since: datetime | None
    cycle: int
    last_touchpoint_at: datetime | None
    at_risk: bool
    flags: list[str]
    latest_stage_change: LatestStageChange | None = Field(
        description="null while the relationship is still in its first stage"
    )


class BookPage(Model):
    position: Position
    as_of: datetime = Field(description="the time at-risk flags are judged at")
    manager_id: str
    items: list[BookEntry]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: last")


ManagerId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]


class AccountManagerChange(Model):
    manager_id: ManagerId | None = Field(
        description="the account manager to put in charge; null takes the current one off"
    )
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1000)] = Field(
        description="why, for the audit trail"
    )


class AccountManagerResponse(Model):
    position: Position = Field(
        description="the log position of the event written, or the head when nothing "
        "changed: usable as min_position"
    )
    customer_id: str
    account_manager: str | None
    changed: bool
    version: int = Field(description="the relationship's version after the change")


class IngestResult(Model):
    event_id: str | None = Field(description="null when the item did not name one")
    customer_id: str | None = Field(description="null when the item did not name one")
    status: Literal["recorded", "duplicate", "rejected"]
    error_code: str | None = Field(
        description="why it was rejected (Contract 1's codes: invalid_json, missing_field, …)"
    )
    reason: str | None


class IngestResponse(Model):
    position: Position = Field(
        description="the log position of the last event written (the head when nothing was "
        "written): pass as min_position to read your writes"
    )
    results: list[IngestResult] = Field(description="one per item, in order")


class StageChange(Model):
    from_stage: str
    to_stage: str
    cycle: int
    rule: str
    policy_version: int
    triggered_by: str
    effective_at: datetime = Field(description="business time: when the change took effect")
    recorded_at: datetime = Field(
        validation_alias="timestamp", description="when the engine recorded it"
    )


class StageAt(Model):
    time: datetime = Field(description="the business time asked about")
    stage: str | None = Field(description="null before the relationship began")
    cycle: int | None
    since: datetime | None = Field(description="business time the stage took effect")


class StagesResponse(Model):
    customer_id: str
    position: Position
    stages: list[StageChange] = Field(description="every stage change, in log order")
    at: StageAt | None = Field(description="the stage in force at `at`, when asked")


class StageFigures(Model):
    stage: str
    current: int = Field(description="relationships in this stage now")
    entered: int = Field(description="times a relationship entered it (all cycles)")
    median_days_in_stage: float | None = Field(
        validation_alias="median_days", description="over completed stays, whole days"
    )
    completed_stays: int


class Conversion(Model):
    from_stage: str
    to_stage: str
    entered: int
    converted: int
    rate: float | None


class Transition(Model):
    from_stage: str = Field(description="'started' for a relationship's first stage")
    to_stage: str
    rule: str
    count: int


class Dissolution(Model):
    rule: str
    reason: str
    count: int


class FunnelResponse(Model):
    position: Position
    relationships: int
    stages: list[StageFigures]
    conversions: list[Conversion]
    transitions: list[Transition]
    dissolutions: list[Dissolution]


class Complaint(Model):
    customer_id: str
    complaint_id: str
    status: str = Field(description="open or resolved")
    raised_at: datetime
    channel: str | None
    reason: str | None
    resolved_at: datetime | None
    age_days: float | None = Field(description="open complaints: days open at as_of")
    resolution_hours: float | None


class CaseStats(Model):
    total: int
    open: int
    closed: int
    median_hours: float | None
    mean_hours: float | None
    p90_hours: float | None
    oldest_open_days: float | None


class ComplaintsResponse(Model):
    position: Position
    as_of: datetime
    stats: CaseStats = Field(description="closed = resolved; hours to resolution")
    items: list[Complaint]
    next_cursor: str | None


class Inquiry(Model):
    customer_id: str
    inquiry_id: str = Field(description="the inquiry's event_id")
    status: str = Field(description="answered or unanswered")
    asked_at: datetime
    channel: str | None
    answered_at: datetime | None
    response_hours: float | None


class InquiriesResponse(Model):
    position: Position
    as_of: datetime
    stats: CaseStats = Field(description="closed = answered; hours to the first response")
    items: list[Inquiry]
    next_cursor: str | None


class FollowUp(Model):
    customer_id: str
    kind: str = Field(description="thank_you_call, satisfaction_check or anniversary")
    ref: str = Field(description="the purchase's event_id, the complaint_id, or which anniversary")
    due_at: datetime
    basis_at: datetime = Field(description="the purchase, resolution or start it follows")


class FollowUpsResponse(Model):
    position: Position
    before: date
    since: date
    items: list[FollowUp]
    next_cursor: str | None


class CategoryAffinity(Model):
    category: str
    score: float = Field(description="sum over the customer's categories of P(category | it)")
    customers: int


class PurchasePatternResponse(Model):
    position: Position
    customer_id: str
    observation_end: date
    purchase_days: int
    first_purchase_on: date | None
    last_purchase_on: date | None
    frequency: int | None = Field(description="distinct purchase days - 1")
    recency: int | None = Field(description="days from first to last purchase day")
    T: int | None = Field(description="days from first purchase day to observation_end")
    currency: str | None
    monetary_value: Decimal | None = Field(
        description="mean per-day total excluding the first purchase day (0 if frequency 0)"
    )
    monetary_value_by_currency: dict[str, Decimal]
    mean_interpurchase_days: float | None
    expected_next_purchase_on: date | None
    categories: dict[str, int] = Field(description="purchases by category")
    category_affinity: list[CategoryAffinity]


class PredictionsResponse(Model):
    position: Position = Field(
        description="log position of the fit the predictions come from (its ModelFitted events)"
    )
    customer_id: str
    observation_end: date = Field(
        description="the fit's last day of purchases: predictions are conditional on the "
        "customer's purchases up to it and cover the horizon after it"
    )
    period_days: int = Field(description="days per period the models were fitted in")
    horizon_days: int
    monthly_discount: float
    p_alive: float | None = Field(
        description="probability the customer is still a customer at the observation end "
        "(BG/NBD); null without a purchase by then"
    )
    expected_purchases: float | None = Field(
        description="expected purchase days in the horizon (BG/NBD conditional expectation)"
    )
    expected_average_value: float | None = Field(
        description="expected spend per purchase day (Gamma-Gamma conditional expectation)"
    )
    clv: float | None = Field(
        description="expected spend in the horizon, each 30-day month discounted by "
        "(1 + monthly_discount)^month"
    )
    frequency: int | None = Field(description="repeat purchase days by the observation end")
    recency: int | None = Field(description="days from the first to the last purchase day")
    T: int | None = Field(description="days from the first purchase day to the observation end")
    monetary_value: float | None = Field(description="mean total of the repeat purchase days")


class HistoryResponse(Model):
    position: Position
    customer_id: str
    events: list[RelationshipEvent]


class RelationshipState(Model):
    # Read from a ``Relationship`` aggregate (a docstring would enter the OpenAPI document).
    customer_id: str
    relationship_id: Annotated[str, BeforeValidator(str)] = Field(validation_alias="id")
    version: int
    recorded_at: datetime = Field(
        validation_alias="modified_on", description="when the version shown was recorded"
    )
    stage: str
    stage_since: datetime
    cycle: int
    started_at: datetime
    touchpoints: int = Field(validation_alias="touchpoint_count")
    first_touchpoint_at: datetime | None
    last_touchpoint_at: datetime | None
    open_complaints: dict[str, datetime]
    personal_data_erased: bool


class StateResponse(Model):
    position: Position
    state: RelationshipState


class ProjectionStatus(Model):
    name: str
    position: Position
    lag: int = Field(ge=0, description="events recorded but not yet projected")


class ProjectionsResponse(Model):
    position: Position = Field(description="head of the event log")
    max_lag: int
    ready: bool
    projections: list[ProjectionStatus]


class Health(Model):
    status: str
