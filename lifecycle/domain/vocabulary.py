"""The words of Contract 1 and 2: lifecycle stages, touchpoint kinds, phases and channels."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """A relationship's lifecycle stage, in order (Contract 2)."""

    EXPLORATION = "exploration"
    AWARENESS = "awareness"
    EXPANSION = "expansion"
    COMMITMENT = "commitment"
    DISSOLUTION = "dissolution"

    @property
    def is_open(self) -> bool:
        return self is not Stage.DISSOLUTION

    @property
    def next(self) -> Stage | None:
        """The stage one forward move away, or None from commitment and dissolution."""
        return _FORWARD.get(self)


_FORWARD = {
    Stage.EXPLORATION: Stage.AWARENESS,
    Stage.AWARENESS: Stage.EXPANSION,
    Stage.EXPANSION: Stage.COMMITMENT,
}


class Phase(StrEnum):
    """The phases of the relationship process that touchpoint kinds belong to."""

    SALES_AND_MARKETING = "sales_and_marketing"
    DELIVERY = "delivery"
    SERVICE_AND_FOLLOW_UP = "service_and_follow_up"


class Kind(StrEnum):
    """What happened at a touchpoint (Contract 1)."""

    MARKETING = "marketing"
    INQUIRY = "inquiry"
    RESPONSE = "response"
    SALES_CONTACT = "sales_contact"
    TRIAL = "trial"
    PURCHASE = "purchase"
    DELIVERY = "delivery"
    SUPPORT_REQUEST = "support_request"
    COMPLAINT = "complaint"
    COMPLAINT_RESOLVED = "complaint_resolved"
    SURVEY = "survey"
    FOLLOW_UP = "follow_up"
    REFERRAL = "referral"
    COMMUNITY = "community"
    RENEWAL = "renewal"
    CANCELLATION = "cancellation"

    @property
    def phase(self) -> Phase:
        return PHASE_OF_KIND[self]


PHASE_OF_KIND: dict[Kind, Phase] = {
    **dict.fromkeys(
        (Kind.MARKETING, Kind.INQUIRY, Kind.RESPONSE, Kind.SALES_CONTACT, Kind.TRIAL),
        Phase.SALES_AND_MARKETING,
    ),
    **dict.fromkeys((Kind.PURCHASE, Kind.DELIVERY), Phase.DELIVERY),
    **dict.fromkeys(
        (
            Kind.SUPPORT_REQUEST,
            Kind.COMPLAINT,
            Kind.COMPLAINT_RESOLVED,
            Kind.SURVEY,
            Kind.FOLLOW_UP,
            Kind.REFERRAL,
            Kind.COMMUNITY,
            Kind.RENEWAL,
            Kind.CANCELLATION,
        ),
        Phase.SERVICE_AND_FOLLOW_UP,
    ),
}


class Channel(StrEnum):
    """How a touchpoint reached the customer (Contract 1)."""

    EMAIL = "email"
    PHONE = "phone"
    IN_PERSON = "in_person"
    WEB = "web"
    CHAT = "chat"
    MAIL = "mail"
    VIDEO = "video"
    SOCIAL = "social"
    COMMUNITY = "community"
    SELF_SERVICE = "self_service"
    AUTOMATED = "automated"
    EVENT = "event"
