"""Property-based: requests generated from the OpenAPI document never meet a server
error nor an answer that breaks the document (schemathesis, in-process ASGI)."""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.read.conftest import ADMIN

EXAMPLES_PER_ROUTE = 25
# Not "schema-valid data is accepted": a cursor is opaque, and one made up is refused.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_the_api_keeps_to_its_openapi_document(client: TestClient) -> None:
    api = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    # The routes that write go last: what they record leaves the read models behind the
    # log (nothing projects here), and /readyz then rightly answers 503.
    operations = sorted(
        (result.ok() for result in api.get_all_operations()),
        key=lambda operation: operation.method.upper() != "GET",
    )
    statuses: set[int] = set()

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_ROUTE,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def keeps_to_the_document(case: Any) -> None:
            response = case.call_and_validate(headers=ADMIN, checks=CHECKS)
            statuses.add(response.status_code)

        keeps_to_the_document()

    assert len(operations) == 18
    assert {200, 404, 422} <= statuses
