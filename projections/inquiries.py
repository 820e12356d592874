"""Inquiries and their response times: an ``inquiry`` is answered by the first
``response`` whose ``attributes.in_reply_to`` names its event_id. A response naming no
inquiry answers nothing; one recorded before its inquiry waits for it (see
``projections.pairs``)."""

from __future__ import annotations

from typing import Any

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking

from lifecycle.domain.vocabulary import Kind
from lifecycle.persistence.topics import stored_topics
from projections.pairs import CaseModel, CaseView, case_table
from projections.readmodel import TouchpointRecorded
from projections.views import PostgresView, SQLiteView


class InquiriesView(CaseView):
    projection_name = "inquiries"
    case_base = "threads"
    tables = (case_table("threads"),)


class SQLiteInquiriesView(InquiriesView, SQLiteView):
    pass


class PostgresInquiriesView(InquiriesView, PostgresView):
    pass


class Inquiries(CaseModel):
    """Projects inquiries: opened by ``inquiry``, closed by the ``response`` to it."""

    name = "inquiries"
    description = "inquiry response times"
    view_classes = {"sqlite": SQLiteInquiriesView, "postgres": PostgresInquiriesView}  # noqa: RUF012
    topics = stored_topics(TouchpointRecorded)
    touchpoint_kinds = frozenset({Kind.INQUIRY.value, Kind.RESPONSE.value})

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Only touchpoints concern inquiries."""

    @process_event.register(TouchpointRecorded)
    def _touchpoint(self, domain_event: Any, tracking: Tracking) -> None:
        kind = domain_event.kind
        if kind == Kind.INQUIRY:
            self.case(domain_event.customer_id, domain_event.event_id).open(
                domain_event.occurred_at, domain_event.channel, None
            )
        elif kind == Kind.RESPONSE:
            in_reply_to = domain_event.attributes.get("in_reply_to")
            if in_reply_to:
                self.case(domain_event.customer_id, str(in_reply_to)).close(
                    domain_event.occurred_at, domain_event.channel
                )
