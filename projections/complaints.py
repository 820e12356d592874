"""Complaints: each complaint (by ``complaint_id``, per customer) open or resolved, its
age and its resolution time. A resolution recorded before its complaint waits for it
(see ``projections.pairs``)."""

from __future__ import annotations

from typing import Any

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking

from lifecycle.domain.vocabulary import Kind
from lifecycle.persistence.topics import stored_topics
from projections.pairs import CaseModel, CaseView, case_table
from projections.readmodel import TouchpointRecorded
from projections.views import PostgresView, SQLiteView


class ComplaintsView(CaseView):
    projection_name = "complaints"
    case_base = "cases"
    tables = (case_table("cases"),)


class SQLiteComplaintsView(ComplaintsView, SQLiteView):
    pass


class PostgresComplaintsView(ComplaintsView, PostgresView):
    pass


class Complaints(CaseModel):
    """Projects complaints: opened by ``complaint``, closed by ``complaint_resolved``."""

    name = "complaints"
    description = "complaints, open and resolved"
    view_classes = {"sqlite": SQLiteComplaintsView, "postgres": PostgresComplaintsView}  # noqa: RUF012
    topics = stored_topics(TouchpointRecorded)
    touchpoint_kinds = frozenset({Kind.COMPLAINT.value, Kind.COMPLAINT_RESOLVED.value})

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Only touchpoints concern complaints."""

    @process_event.register(TouchpointRecorded)
    def _touchpoint(self, domain_event: Any, tracking: Tracking) -> None:
        kind = domain_event.kind
        if kind == Kind.COMPLAINT:
            attributes = domain_event.attributes
            self.case(domain_event.customer_id, str(attributes["complaint_id"])).open(
                domain_event.occurred_at, domain_event.channel, attributes.get("reason")
            )
        elif kind == Kind.COMPLAINT_RESOLVED:
            complaint_id = str(domain_event.attributes["complaint_id"])
            self.case(domain_event.customer_id, complaint_id).close(
                domain_event.occurred_at, domain_event.channel
            )
