"""Contract 1, the upstream touchpoint message, in every version the engine knows, as
pydantic models; and the one gate every ingestion path goes through.

``parse_touchpoint`` turns raw bytes into a domain ``Touchpoint`` or raises
``RejectedTouchpoint`` with a stable code and a one-line reason. It reads the message's
``schema_version`` before anything else: a version the engine does not know is
``unsupported_schema_version``, whatever else the message carries. It then validates the
message against that version's models and upcasts it one version at a time
(``upcast_v1_v2``, …) to the current version, the only one that becomes a touchpoint
(``touchpoint_of``):
everything behind the gate sees one form. The JSON Schema of each version in
``schemas/`` is generated from these models (``MESSAGE_VERSIONS``).

Version 2 renames ``source`` to ``producer``, adds the optional ``correlation_id``, and
carries a purchase's amount and currency as one object, ``attributes.total``. The
touchpoint keeps a purchase as ``attributes.amount`` and ``attributes.currency``, the form
every purchase ever recorded has: the wire form changed, the recorded facts did not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
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
UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
SourceName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
DecimalString = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?$")]


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


class _TouchpointFields(BaseModel):
    """What every version of the message has in common."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Id = Field(description="unique per upstream event and customer")
    customer_id: Id
    channel: Channel
    occurred_at: AwareDatetime = Field(description="business time, RFC 3339 with offset")


_GENERAL_KINDS = Literal[
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
"""The kinds whose attributes the contract leaves open: one model serves them all."""


def _touchpoint_message(
    common: type[_TouchpointFields], name_suffix: str, purchase: type[Attributes]
) -> Any:
    """A version's message: one model a kind (the general kinds share one) on the
    version's ``common`` fields, told apart by ``kind``.

    The versions differ only in those fields and in a purchase's attributes. Each model
    is named as the published schema names it, e.g. ``PurchaseTouchpoint`` + ``name_suffix``.
    """

    def optional(attributes: type[Attributes]) -> tuple[type[Attributes], Any]:
        return attributes, Field(default_factory=attributes)

    def required(attributes: type[Attributes]) -> tuple[type[Attributes], Any]:
        return attributes, ...

    kinds: dict[str, tuple[Any, tuple[type[Attributes], Any]]] = {
        "GeneralTouchpoint": (_GENERAL_KINDS, optional(Attributes)),
        "PurchaseTouchpoint": (Literal[Kind.PURCHASE], required(purchase)),
        "ResponseTouchpoint": (Literal[Kind.RESPONSE], optional(ResponseAttributes)),
        "ComplaintTouchpoint": (Literal[Kind.COMPLAINT], required(ComplaintAttributes)),
        "ComplaintResolvedTouchpoint": (
            Literal[Kind.COMPLAINT_RESOLVED],
            required(ComplaintResolvedAttributes),
        ),
        "SurveyTouchpoint": (Literal[Kind.SURVEY], required(SurveyAttributes)),
        "FollowUpTouchpoint": (Literal[Kind.FOLLOW_UP], optional(FollowUpAttributes)),
        "CancellationTouchpoint": (Literal[Kind.CANCELLATION], optional(CancellationAttributes)),
    }
    models = tuple(
        create_model(name + name_suffix, __base__=common, kind=(kind, ...), attributes=attributes)
        for name, (kind, attributes) in kinds.items()
    )
    return Annotated[Union[models], Field(discriminator="kind")]  # noqa: UP007


# Version 1 -------------------------------------------------------------------------------


class _TouchpointMessage(_TouchpointFields):
    source: SourceName = Field(description="upstream system name")
    personal: Personal | None = None
    schema_version: int = Field(default=1, ge=1, le=1)


TouchpointMessageV1 = _touchpoint_message(
    _TouchpointMessage, name_suffix="", purchase=PurchaseAttributes
)


# Version 2 -------------------------------------------------------------------------------


class Total(BaseModel):
    """A purchase's amount in its currency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: DecimalString = Field(description='a decimal string, at least 0 (e.g. "19.99")')
    currency: CurrencyCode = Field(description="ISO 4217 code")


class PurchaseAttributesV2(Attributes):
    model_config = ConfigDict(
        # A version 2 purchase names its amount in total only: a version 1 amount (or
        # currency) beside or instead of it would be ambiguous.
        json_schema_extra={"not": {"anyOf": [{"required": ["amount"]}, {"required": ["currency"]}]}}
    )

    total: Total
    order_id: str | None = None
    product: str | None = None
    category: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_version_1_amount(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("amount", "currency"):
                if name in data:
                    raise ValueError(
                        f"{name} is a version 1 attribute: version 2 carries a purchase's "
                        "amount and currency in total"
                    )
        return data


class _TouchpointMessageV2(_TouchpointFields):
    producer: SourceName = Field(description="upstream system name")
    correlation_id: Id | None = Field(
        default=None,
        description="the upstream's trace or workflow id; kept on the recorded touchpoint "
        "and on every outbound event it causes",
    )
    personal: Personal | None = None
    schema_version: Literal[2]


TouchpointMessageV2 = _touchpoint_message(
    _TouchpointMessageV2, name_suffix="V2", purchase=PurchaseAttributesV2
)


# From a version to the next, and to the touchpoint -----------------------------------------

MessageFields = dict[str, Any]
"""A validated message as its version says it: the top-level fields as validated (times,
kinds and channels as such), ``attributes`` and ``personal`` as JSON values. Upcasters
work on this form: it costs a few dictionary operations to change, where building the
next version's models again would double the price of the gate."""


def fields_of(message: _TouchpointFields) -> MessageFields:
    """The fields of a validated message of any version."""
    fields = dict(vars(message))  # a model keeps its validated fields there
    personal: Personal | None = fields.get("personal")
    fields["personal"] = personal.model_dump(exclude_none=True) if personal else None
    fields["attributes"] = _json_attributes(fields["attributes"])
    return fields


def _json_attributes(attributes: Attributes) -> dict[str, Any]:
    if not type(attributes).model_fields:  # only keys the contract does not name: as they came
        return dict(attributes.__pydantic_extra__ or {})
    return attributes.model_dump(mode="json", exclude_none=True)


def upcast_v1_v2(fields: MessageFields) -> MessageFields:
    """A version 1 message as version 2 says it: ``source`` is the producer, there is
    no correlation id, a purchase's amount and currency (the default currency already
    filled in) are its total."""
    fields["producer"] = fields.pop("source")
    fields["correlation_id"] = None
    fields["schema_version"] = 2
    if fields["kind"] is Kind.PURCHASE:
        attributes = fields["attributes"]
        total = {"amount": attributes.pop("amount"), "currency": attributes.pop("currency")}
        fields["attributes"] = {"total": total, **attributes}
    return fields


def touchpoint_of(fields: MessageFields, arrived_as: int) -> Touchpoint:
    """The touchpoint of a message of the current version, which arrived as version
    ``arrived_as``. A purchase's total is recorded as the ``amount`` and ``currency``
    every recorded purchase has."""
    occurred_at: datetime = fields["occurred_at"]
    offset = occurred_at.utcoffset() or ZERO
    attributes = fields["attributes"]
    if fields["kind"] is Kind.PURCHASE:
        total = attributes.pop("total")
        attributes = {"amount": total["amount"], "currency": total["currency"], **attributes}
    return Touchpoint(
        event_id=fields["event_id"],
        customer_id=fields["customer_id"],
        kind=fields["kind"],
        channel=fields["channel"],
        # pydantic's own tzinfo is several times slower in every later comparison
        # and isoformat(); the standard library's keeps the same offset.
        occurred_at=occurred_at.replace(tzinfo=_TIMEZONES.get(offset) or timezone(offset)),
        producer=fields["producer"],
        correlation_id=fields["correlation_id"],
        attributes=attributes,
        personal=fields["personal"],
        schema_version=arrived_as,
    )


# The versions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageVersion:
    """One version of Contract 1: its models, and the step up to the next version."""

    number: int
    adapter: TypeAdapter[Any]
    upcast: Callable[[MessageFields], MessageFields] | None
    """The message as the next version says it (None: this is the current version)."""
    description: str


MESSAGE_VERSIONS: dict[int, MessageVersion] = {
    1: MessageVersion(
        1,
        TypeAdapter(TouchpointMessageV1),
        upcast_v1_v2,
        "An upstream customer touchpoint (Contract 1), topic crm.touchpoints, key "
        "customer_id, at most 64 KiB of UTF-8 JSON.",
    ),
    2: MessageVersion(
        2,
        TypeAdapter(TouchpointMessageV2),
        None,
        "An upstream customer touchpoint, version 2 (Contract 6): source renamed producer, an "
        "optional correlation_id, a purchase's amount and currency as attributes.total. Topic "
        "crm.touchpoints, key customer_id, at most 64 KiB of UTF-8 JSON.",
    ),
}
"""Every version of the message the engine accepts, by number; the highest is current."""

CURRENT_SCHEMA_VERSION = max(MESSAGE_VERSIONS)


class _Envelope(BaseModel):
    """The one field read before the others."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = 1


@dataclass(frozen=True, slots=True)
class MessageRules:
    """The configurable parts of Contract 1's validation."""

    default_currency: str = "EUR"
    max_future_skew: timedelta = timedelta(minutes=5)


class MessageGate:
    """Validates messages of the versions it accepts and upcasts them to the current one.

    The engine's gate accepts every version it knows; a narrower gate stands for an
    engine that knew fewer (how the upgrade story is tested)."""

    def __init__(self, accepts: Iterable[int] = MESSAGE_VERSIONS) -> None:
        self.accepts = frozenset(accepts)
        unknown = self.accepts - set(MESSAGE_VERSIONS)
        if unknown:
            raise ValueError(f"no message version {sorted(unknown)}")
        self._known = ", ".join(str(number) for number in sorted(self.accepts))

    def parse(self, raw: bytes | str, now: datetime, rules: MessageRules) -> Touchpoint:
        """Validate one upstream message and return its touchpoint.

        Raises ``RejectedTouchpoint`` naming the first problem found.
        """
        if len(raw) > MAX_MESSAGE_BYTES:
            raise RejectedTouchpoint(
                "too_large", f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}"
            )
        number = self._version_of(raw)
        version = MESSAGE_VERSIONS[number]
        try:
            message = version.adapter.validate_json(
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
        fields = fields_of(message)
        while version.upcast is not None:
            fields = version.upcast(fields)
            version = MESSAGE_VERSIONS[version.number + 1]
        touchpoint = touchpoint_of(fields, arrived_as=number)
        check_storable(touchpoint.attributes)
        return touchpoint

    def _version_of(self, raw: bytes | str) -> int:
        """The message's version; a message that is no JSON object is left to version 1's
        models, which say what is wrong with it as they always have."""
        if isinstance(raw, bytes):
            plain = b'"schema_version"' not in raw and b"\\u" not in raw
        else:
            plain = '"schema_version"' not in raw and "\\u" not in raw
        # No key of a plain message spells schema_version: version 1, without parsing twice.
        number = 1 if plain else self._read_version(raw)
        if number is None or number not in self.accepts:
            named = "" if number is None else f" {number}"
            raise RejectedTouchpoint(
                UNSUPPORTED_SCHEMA_VERSION,
                f"schema_version{named}: this engine accepts versions {self._known}",
            )
        return number

    @staticmethod
    def _read_version(raw: bytes | str) -> int | None:
        """The version a message names (1 when it is no JSON object); None when what it
        names is not a version."""
        try:
            return _Envelope.model_validate_json(raw).schema_version
        except ValidationError as error:
            if any(e["loc"] == ("schema_version",) for e in error.errors()):
                return None
            return 1


GATE = MessageGate()
"""The engine's gate: every version it knows."""


def parse_touchpoint(raw: bytes | str, now: datetime, rules: MessageRules) -> Touchpoint:
    """Validate one upstream message of any known version and return its touchpoint.

    Raises ``RejectedTouchpoint`` naming the first problem found.
    """
    return GATE.parse(raw, now, rules)


def check_storable(attributes: dict[str, Any]) -> None:
    """Attributes are kept as they came; what the log cannot store (an integer beyond 64
    bits, nesting deeper than ``MAX_ATTRIBUTE_DEPTH``) is refused here, at the gate, rather
    than failing the batch that would record it."""
    problem = _unstorable(attributes, 0)
    if problem is not None:
        path, reason = problem
        raise RejectedTouchpoint("invalid_attribute", f"attributes{path}: {reason}")


def _unstorable(value: Any, depth: int) -> tuple[str, str] | None:
    """(where in ``value``, what) of the first thing the log cannot store; None when it
    stores all. The path is written only for a problem: most messages have none."""
    kind = type(value)
    if kind is dict or kind is list:
        if depth >= MAX_ATTRIBUTE_DEPTH:
            return "", f"nested deeper than {MAX_ATTRIBUTE_DEPTH} levels"
        pairs = value.items() if kind is dict else enumerate(value)
        for key, item in pairs:
            problem = _unstorable(item, depth + 1)
            if problem is not None:
                return f".{key}{problem[0]}", problem[1]
    elif kind is int and value not in STORABLE_INTEGERS:
        return "", "integer beyond 64 bits"
    return None


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
    if kind == "value_error":  # a validator's own words, without pydantic's prefix
        message = str(first.get("ctx", {}).get("error", message))
    if location.startswith("attributes"):
        return RejectedTouchpoint("invalid_attribute", f"{location}: {message}")
    if kind == "missing":
        return RejectedTouchpoint("missing_field", f"{location}: field required")
    if kind == "extra_forbidden":
        return RejectedTouchpoint("unknown_field", f"{location}: not a field of the message")
    return RejectedTouchpoint("invalid_field", f"{location}: {message}")


def _location(loc: tuple[int | str, ...]) -> str:
    # The discriminated union puts the kind tag in the path; readers want the field path.
    parts = [str(part) for part in loc]
    if parts and parts[0] in {k.value for k in Kind}:
        parts = parts[1:]
    return ".".join(parts)


def touchpoint_json_schema(number: int) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of version ``number`` of Contract 1, from the models."""
    version = MESSAGE_VERSIONS[number]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"touchpoint.v{number}.schema.json",
        "title": "Touchpoint",
        "description": version.description,
        **version.adapter.json_schema(),
    }
