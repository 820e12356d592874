"""The analytics predictions as downstream services read them (Contract 8), on SQLite
and PostgreSQL: a customer's predictions from the latest fit, the ``p_alive_below``
list filter and the ``likely_lapsed`` at-risk flag, which the summary's reads judge on
the fit's p_alive joined in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lifecycle.analytics.btyd import BgNbd
from lifecycle.entrypoints.analytics import FitRecorded, fit
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.settings import Settings
from projections.api import create_app
from projections.predictions import CustomerFigures
from projections.service import catch_up
from projections.wiring import close_view
from tests.analytics_support import purchase_timelines, purchase_touchpoints, weeks_after_start
from tests.e2e.read.conftest import KEYS, READER
from tests.integration.projections.conftest import History

OBSERVATION_END = weeks_after_start(52).date()
PREDICTIONS = "/v1/customers/{}/predictions"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, log_format="json", api_keys=KEYS)


@pytest.fixture
def components(settings: Settings) -> Iterator[Components]:
    """A hundred and fifty customers buying by the BG/NBD process, a browser who never
    bought, and a customer whose first purchase came after the observation end."""
    components = Components(settings)
    app = components.application()
    rng = np.random.default_rng(12)
    timelines = purchase_timelines(rng, 150, BgNbd(r=0.8, alpha=4.0, a=0.6, b=2.5), weeks=60)
    timelines["late-buyer"] = [56.0]
    app.record_batch(purchase_touchpoints(timelines, rng))
    History(app)("browser", "inquiry", 400)
    catch_up(components, app=app)
    app.close()
    yield components


@pytest.fixture
def client(components: Components) -> Iterator[TestClient]:
    with TestClient(create_app(components.read_side())) as test_client:
        yield test_client


@pytest.fixture
def fitted(components: Components) -> FitRecorded:
    return fit(components, observation_end=OBSERVATION_END, period_days=7)


def figures(components: Components) -> dict[str, CustomerFigures]:
    view = components.predictions_view()
    try:
        return {c.customer_id: c for c in view.every_customer()}
    finally:
        close_view(view)


def every_summary(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get(
            "/v1/customers",
            params={**params, "limit": 40, **({"cursor": cursor} if cursor else {})},
            headers=READER,
        ).json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_before_any_fit_predictions_answer_409_no_model_fitted(client: TestClient) -> None:
    one = client.get(PREDICTIONS.format("cust-00001"), headers=READER)
    filtered = client.get("/v1/customers", params={"p_alive_below": 0.5}, headers=READER)

    assert (one.status_code, one.json()["error"]) == (409, "no_model_fitted")
    assert (filtered.status_code, filtered.json()["error"]) == (409, "no_model_fitted")


def test_before_any_fit_nobody_is_likely_lapsed(client: TestClient) -> None:
    assert all("likely_lapsed" not in s["flags"] for s in every_summary(client))


def test_a_customers_predictions_come_from_the_latest_fit(
    client: TestClient, components: Components, fitted: FitRecorded
) -> None:
    known = figures(components)["cust-00001"]

    answer = client.get(PREDICTIONS.format("cust-00001"), headers=READER)

    body = answer.json()
    assert answer.status_code == 200
    assert body["position"] == fitted.fit.position
    assert answer.headers["X-Projection-Position"] == str(fitted.fit.position)
    assert body["observation_end"] == OBSERVATION_END.isoformat()
    assert (body["horizon_days"], body["monthly_discount"]) == (90, 0.01)
    assert body["p_alive"] == pytest.approx(known.p_alive, rel=1e-12)
    assert (body["frequency"], body["recency"], body["T"]) == (
        known.frequency,
        known.recency,
        known.age,
    )
    assert body["expected_purchases"] >= 0
    assert body["expected_average_value"] == pytest.approx(known.expected_average_value)


def test_a_longer_horizon_expects_more_purchases_and_more_value(
    client: TestClient, fitted: FitRecorded
) -> None:
    def at(days: int) -> dict[str, Any]:
        answer = client.get(
            PREDICTIONS.format("cust-00002"), params={"horizon_days": days}, headers=READER
        )
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    quarter, year = at(90), at(365)

    assert year["horizon_days"] == 365
    assert year["expected_purchases"] > quarter["expected_purchases"]
    assert year["clv"] > quarter["clv"]
    assert year["p_alive"] == quarter["p_alive"]


def test_customers_without_a_purchase_by_the_observation_end_get_null_predictions(
    client: TestClient, fitted: FitRecorded
) -> None:
    for customer in ("browser", "late-buyer"):
        body = client.get(PREDICTIONS.format(customer), headers=READER).json()
        assert body["customer_id"] == customer
        assert [body[k] for k in ("p_alive", "expected_purchases", "clv", "frequency")] == [
            None
        ] * 4


def test_an_unknown_customer_is_404_and_a_request_without_a_key_401(
    client: TestClient, fitted: FitRecorded
) -> None:
    assert client.get(PREDICTIONS.format("nobody"), headers=READER).status_code == 404
    assert client.get(PREDICTIONS.format("cust-00001")).status_code == 401


def test_p_alive_below_lists_the_customers_the_fit_gives_less(
    client: TestClient, components: Components, fitted: FitRecorded
) -> None:
    known = figures(components)
    wanted = sorted(c for c, f in known.items() if f.p_alive < 0.6)
    assert 0 < len(wanted) < len(known)  # the filter keeps some and leaves some

    listed = every_summary(client, p_alive_below=0.6)

    assert [s["customer_id"] for s in listed] == wanted


def test_likely_lapsed_is_raised_below_the_configured_p_alive(
    client: TestClient, components: Components, fitted: FitRecorded
) -> None:
    known = figures(components)
    lapsed = sorted(c for c, f in known.items() if f.p_alive < 0.3)
    assert lapsed

    summaries = every_summary(client)
    flagged = every_summary(client, flag="likely_lapsed")
    one = client.get(f"/v1/customers/{lapsed[0]}", headers=READER).json()["relationship"]

    assert sorted(s["customer_id"] for s in summaries if "likely_lapsed" in s["flags"]) == lapsed
    assert [s["customer_id"] for s in flagged] == lapsed
    assert "likely_lapsed" in one["flags"]
    assert one["at_risk"]


def test_the_likely_lapsed_bound_is_the_setting(
    components: Components, settings: Settings, fitted: FitRecorded
) -> None:
    known = figures(components)
    stricter = Components(settings.model_copy(update={"p_alive_at_risk": 0.6}))

    with TestClient(create_app(stricter.read_side())) as client:
        flagged = every_summary(client, flag="likely_lapsed")

    assert [s["customer_id"] for s in flagged] == sorted(
        c for c, f in known.items() if f.p_alive < 0.6
    )
