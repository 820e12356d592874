"""Contract 1, the upstream touchpoint message, as pydantic models.

``parse_touchpoint`` is the one gate every ingestion path goes through: it turns raw
bytes into a domain ``Touchpoint`` or raises ``RejectedTouchpoint`` with a stable code
and a one-line reason. The JSON Schema in ``schemas/`` is generated from these models.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from lifecycle.domain.errors import RejectedTouchpoint
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Channel, Kind

MAX_MESSAGE_BYTES = 64 * 1024
MAX_ATTRIBUTE_DEPTH = 32
STORABLE_INTEGERS = range(-(2**63), 2**64)
"""Integers the log's JSON encoder stores (64 bits, signed or not)."""
ZERO = timedelta(0)
_TIMEZONES = {ZERO: UTC}
SUPPORTED_SCHEMA_VERSION = 1

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
SourceName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Personal(BaseModel):
    """Personal data about the customer: encrypted at rest per customer, erasable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, max_length=256)
    email: str | None = Field(default=None, max_length=256)
    phone: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=4096)


class Attributes(BaseModel):
    """Kind-specific facts; keys this contract does not name are kept as they came."""

    model_config = ConfigDict(extra="allow", frozen=True)


class PurchaseAttributes(Attributes):
    amount: Decimal = Field(
        ge=0, allow_inf_nan=False, description="a JSON number or decimal string"
    )
    currency: CurrencyCode | None = Field(
        default=None,
        validate_default=True,
        description="ISO 4217 code; the configured default currency when absent",
    )
    order_id: str | None = None
    product: str | None = None
    category: str | None = None

    @field_validator("currency", mode="after")
    @classmethod
    def _default_currency(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.context:
            default: str | None = info.context.get("default_currency")
            return default
        return value


class ResponseAttributes(Attributes):
    in_reply_to: Id | None = Field(default=None, description="event_id of the inquiry answered")


class ComplaintAttributes(Attributes):
    complaint_id: Id
    reason: str | None = None


class ComplaintResolvedAttributes(Attributes):
    complaint_id: Id


class SurveyAttributes(Attributes):
    score: int = Field(ge=0, le=10, strict=True)


class FollowUpAttributes(Attributes):
    action: str | None = Field(
        default=None, description="e.g. thank_you_call, newsletter, card, gift, visit"
    )


class CancellationAttributes(Attributes):
    reason: str | None = None


class _TouchpointMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Id = Field(description="unique per upstream event and customer")
    customer_id: Id
    channel: Channel
    occurred_at: AwareDatetime = Field(description="business time, RFC 3339 with offset")
    source: SourceName = Field(description="upstream system name")
    personal: Personal | None = None
    schema_version: int = Field(default=1, ge=1, le=SUPPORTED_SCHEMA_VERSION)

    def to_touchpoint(self) -> Touchpoint:
        attributes: Attributes = getattr(self, "attributes")  # noqa: B009
        occurred_at = self.occurred_at
        offset = occurred_at.utcoffset() or ZERO
        return Touchpoint(
            event_id=self.event_id,
            customer_id=self.customer_id,
            kind=getattr(self, "kind"),  # noqa: B009 (each subclass narrows it to Kind members)
            channel=self.channel,
            # pydantic's own tzinfo is several times slower in every later comparison
            # and isoformat(); the standard library's keeps the same offset.
            occurred_at=occurred_at.replace(tzinfo=_TIMEZONES.get(offset) or timezone(offset)),
            source=self.source,
            attributes=_json_attributes(attributes),
            personal=self.personal.model_dump(exclude_none=True) if self.personal else None,
            schema_version=self.schema_version,
        )


def _json_attributes(attributes: Attributes) -> dict[str, Any]:
    if not type(attributes).model_fields:  # only keys the contract does not name: as they came
        return dict(attributes.__pydantic_extra__ or {})
    return attributes.model_dump(mode="json", exclude_none=True)


class GeneralTouchpoint(_TouchpointMessage):
    kind: Literal[
        Kind.MARKETING,
        Kind.INQUIRY,
        Kind.SALES_CONTACT,
        Kind.TRIAL,
        Kind.DELIVERY,
        Kind.SUPPORT_REQUEST,
        Kind.REFERRAL,
        Kind.COMMUNITY,
        Kind.RENEWAL,
    ]
    attributes: Attributes = Field(default_factory=Attributes)


class PurchaseTouchpoint(_TouchpointMessage):
    kind: Literal[Kind.PURCHASE]
    attributes: PurchaseAttributes


class ResponseTouchpoint(_TouchpointMessage):
    kind: Literal[Kind.RESPONSE]
    attributes: ResponseAttributes = Field(default_factory=ResponseAttributes)


class ComplaintTouchpoint(_TouchpointMessage):
    kind: Literal[Kind.COMPLAINT]
    attributes: ComplaintAttributes


class ComplaintResolvedTouchpoint(_TouchpointMessage):
    kind: Literal[Kind.COMPLAINT_RESOLVED]
    attributes: ComplaintResolvedAttributes


class SurveyTouchpoint(_TouchpointMessage):
    kind: Literal[Kind.SURVEY]
    attributes: SurveyAttributes


class FollowUpTouchpoint(_TouchpointMessage):
    kind: Literal[Kind.FOLLOW_UP]
    attributes: FollowUpAttributes = Field(default_factory=FollowUpAttributes)


class CancellationTouchpoint(_TouchpointMessage):
    kind: Literal[Kind.CANCELLATION]
    attributes: CancellationAttributes = Field(default_factory=CancellationAttributes)


TouchpointMessage = Annotated[
    GeneralTouchpoint
    | PurchaseTouchpoint
    | ResponseTouchpoint
    | ComplaintTouchpoint
    | ComplaintResolvedTouchpoint
    | SurveyTouchpoint
    | FollowUpTouchpoint
    | CancellationTouchpoint,
    Field(discriminator="kind"),
]

touchpoint_message_adapter: TypeAdapter[TouchpointMessage] = TypeAdapter(TouchpointMessage)


@dataclass(frozen=True, slots=True)
class MessageRules:
    """The configurable parts of Contract 1's validation."""

    default_currency: str = "EUR"
    max_future_skew: timedelta = timedelta(minutes=5)


def parse_touchpoint(raw: bytes | str, now: datetime, rules: MessageRules) -> Touchpoint:
    """Validate one upstream message and return its touchpoint.

    Raises ``RejectedTouchpoint`` naming the first problem found.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise RejectedTouchpoint(
            "too_large", f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}"
        )
    try:
        message = touchpoint_message_adapter.validate_json(
            raw, context={"default_currency": rules.default_currency}
        )
    except ValidationError as error:
        raise rejection_from(error) from None
    if message.occurred_at - now > rules.max_future_skew:
        raise RejectedTouchpoint(
            "occurred_in_future",
            f"occurred_at {message.occurred_at.isoformat()} is more than "
            f"{int(rules.max_future_skew.total_seconds())} s in the future",
        )
    touchpoint = message.to_touchpoint()
    check_storable(touchpoint.attributes)
    return touchpoint


def check_storable(value: Any, where: str = "attributes", depth: int = 0) -> None:
    """Attributes are kept as they came; what the log cannot store (an integer beyond 64
    bits, nesting deeper than ``MAX_ATTRIBUTE_DEPTH``) is refused here, at the gate, rather
    than failing the batch that would record it."""
    if isinstance(value, dict | list):
        if depth >= MAX_ATTRIBUTE_DEPTH:
            raise RejectedTouchpoint(
                "invalid_attribute", f"{where}: nested deeper than {MAX_ATTRIBUTE_DEPTH} levels"
            )
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in pairs:
            check_storable(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, int) and value not in STORABLE_INTEGERS:
        raise RejectedTouchpoint("invalid_attribute", f"{where}: integer beyond 64 bits")


def rejection_from(error: ValidationError) -> RejectedTouchpoint:
    """Map pydantic's first error to a stable code and a one-line reason."""
    first = error.errors(include_url=False, include_input=False)[0]
    kind = first["type"]
    location = _location(first["loc"])
    message = first["msg"]
    if kind == "json_invalid":
        detail = first.get("ctx", {}).get("error", message)
        return RejectedTouchpoint("invalid_json", f"not valid JSON: {detail}")
    if kind in ("dict_type", "model_type", "model_attributes_type") and not first["loc"]:
        return RejectedTouchpoint("not_an_object", "message is not a JSON object")
    if kind == "union_tag_not_found":
        return RejectedTouchpoint("missing_field", "kind: field required")
    if kind == "union_tag_invalid":
        tag = first.get("ctx", {}).get("tag", "?")
        return RejectedTouchpoint("unknown_kind", f"kind: {tag!r} is not a touchpoint kind")
    if location.startswith("attributes"):
        return RejectedTouchpoint("invalid_attribute", f"{location}: {message}")
    if kind == "missing":
        return RejectedTouchpoint("missing_field", f"{location}: field required")
    if kind == "extra_forbidden":
        return RejectedTouchpoint("unknown_field", f"{location}: not a field of the message")
    if kind == "less_than_equal" and location == "schema_version":
        return RejectedTouchpoint(
            "unsupported_schema_version",
            f"schema_version: only {SUPPORTED_SCHEMA_VERSION} is supported",
        )
    return RejectedTouchpoint("invalid_field", f"{location}: {message}")


def _location(loc: tuple[int | str, ...]) -> str:
    # The discriminated union puts the kind tag in the path; readers want the field path.
    parts = [str(part) for part in loc]
    if parts and parts[0] in {k.value for k in Kind}:
        parts = parts[1:]
    return ".".join(parts)


def touchpoint_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of Contract 1, generated from the models."""
    schema = touchpoint_message_adapter.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "touchpoint.v1.schema.json",
        "title": "Touchpoint",
        "description": "An upstream customer touchpoint (Contract 1), topic crm.touchpoints, "
        "key customer_id, at most 64 KiB of UTF-8 JSON.",
        **schema,
    }


def utc_now() -> datetime:
    return datetime.now(UTC)
