"""``lifecycle analytics`` as an operator runs it, in a subprocess: fit, predict and
validate on SQLite and PostgreSQL, and the fit as an auditable event of the log."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lifecycle.analytics.btyd import BgNbd
from tests.analytics_support import (
    as_messages,
    purchase_timelines,
    purchase_touchpoints,
    weeks_after_start,
)
from tests.builders import line
from tests.conftest import run_cli

OBSERVATION_END = weeks_after_start(52).date().isoformat()
HOLDOUT_END = weeks_after_start(78).date().isoformat()
AUDIT_KEY = "test-audit-key-0123456789abcdef"


def population_file(directory: Path) -> Path:
    """Two hundred customers buying by the BG/NBD process, as JSON lines of Contract 1."""
    rng = np.random.default_rng(3)
    timelines = purchase_timelines(rng, 200, BgNbd(r=0.8, alpha=4.0, a=0.6, b=2.5), weeks=78)
    path = directory / "population.jsonl"
    path.write_text("\n".join(as_messages(purchase_touchpoints(timelines, rng))) + "\n")
    return path


def store_env(database_url: str) -> dict[str, str]:
    return {"LIFECYCLE_DATABASE_URL": database_url, "LIFECYCLE_AUDIT_HMAC_KEY": AUDIT_KEY}


def imported(database_url: str, population: Path) -> dict[str, str]:
    env = store_env(database_url)
    done = run_cli("import", str(population), env=env)
    assert done.returncode == 0, done.stderr
    return env


def fit(env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    return run_cli("analytics", "fit", "--observation-end", OBSERVATION_END, *options, env=env)


def validate(env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    """A validation calibrated up to the observation end and held out to the holdout end."""
    return run_cli(
        "analytics",
        "validate",
        "--calibration-end",
        OBSERVATION_END,
        "--holdout-end",
        HOLDOUT_END,
        *options,
        env=env,
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The population recorded once into a SQLite store, which each test copies."""
    directory = tmp_path_factory.mktemp("recorded")
    imported(f"sqlite:///{directory / 'lifecycle.db'}", population_file(directory))
    return directory


@pytest.fixture
def store(recorded: Path, tmp_path: Path) -> dict[str, str]:
    """A copy of the recorded store: the environment naming it."""
    copy = shutil.copytree(recorded, tmp_path / "store")
    return store_env(f"sqlite:///{copy / 'lifecycle.db'}")


def test_fit_predict_and_validate_from_the_command_line(database_url: str, tmp_path: Path) -> None:
    env = imported(database_url, population_file(tmp_path))

    fitted = fit(env, "--json")
    assert fitted.returncode == 0, fitted.stderr
    fitted_models = json.loads(fitted.stdout)
    assert set(fitted_models["models"]["bg_nbd"]["parameters"]) == {"r", "alpha", "a", "b"}
    assert set(fitted_models["models"]["gamma_gamma"]["parameters"]) == {"p", "q", "gamma"}
    assert fitted_models["models"]["bg_nbd"]["converged"]
    assert fitted_models["observation_end"] == OBSERVATION_END

    predicted = run_cli(
        "analytics", "predict", "cust-00001", "--horizon-days", "180", "--json", env=env
    )
    assert predicted.returncode == 0, predicted.stderr
    prediction = json.loads(predicted.stdout)
    assert prediction["position"] == fitted_models["position"]
    assert prediction["horizon_days"] == 180
    assert 0 < prediction["p_alive"] <= 1
    assert prediction["expected_purchases"] >= 0
    assert prediction["clv"] == pytest.approx(
        prediction["expected_purchases"] * prediction["expected_average_value"], rel=0.05
    )

    validated = validate(env, "--json")
    assert validated.returncode == 0, validated.stderr
    validation = json.loads(validated.stdout)
    assert validation["actual_total"] > 0
    assert validation["predicted_total"] > 0
    assert validation["mean_absolute_error"] >= 0
    assert validation["tracking"][-1]["week_end"] == HOLDOUT_END


def test_fit_prints_the_parameters_and_the_log_likelihood(store: dict[str, str]) -> None:
    env = store

    fitted = fit(env)

    assert fitted.returncode == 0, fitted.stderr
    bg_nbd, gamma_gamma = fitted.stdout.splitlines()[1:3]
    assert bg_nbd.split()[:3] == ["BG/NBD", "r", bg_nbd.split()[2]]
    assert all(f" {name} " in bg_nbd for name in ("r", "alpha", "a", "b"))
    assert all(f" {name} " in gamma_gamma for name in ("p", "q", "gamma"))
    assert "log-likelihood" in bg_nbd
    assert "log-likelihood" in gamma_gamma


def test_the_fit_is_sealed_verified_and_exported_with_the_log(
    store: dict[str, str], tmp_path: Path
) -> None:
    env = store
    assert fit(env).returncode == 0
    assert run_cli("audit", "seal", env=env).returncode == 0

    verified = run_cli("audit", "verify", env=env)
    exported = run_cli("export", "--out", str(tmp_path / "audit"), env=env)
    offline = run_cli("audit", "verify", "--export", str(tmp_path / "audit"), env=env)

    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert exported.returncode == 0, exported.stderr
    assert offline.returncode == 0, offline.stdout + offline.stderr
    events = [json.loads(e) for e in (tmp_path / "audit" / "events.jsonl").read_text().splitlines()]
    fits = [e for e in events if e["type"] == "ModelFitted"]
    assert [f["data"]["model"] for f in fits] == ["bg_nbd", "gamma_gamma"]


def test_predict_before_any_fit_exits_2_naming_it(store: dict[str, str]) -> None:
    env = store

    done = run_cli("analytics", "predict", "cust-00001", env=env)

    assert done.returncode == 2
    assert "no model fitted" in done.stderr
    assert done.stderr.count("\n") == 1


def test_a_validation_records_no_fit(store: dict[str, str]) -> None:
    env = store
    validated = validate(env)
    assert validated.returncode == 0, validated.stderr
    assert "mean absolute error" in validated.stdout

    assert run_cli("analytics", "predict", "cust-00001", env=env).returncode == 2


def test_a_customer_without_a_purchase_by_the_observation_end_gets_null_predictions(
    store: dict[str, str], tmp_path: Path
) -> None:
    env = store
    late = tmp_path / "late.jsonl"
    late.write_text(
        line(customer_id="browser", kind="inquiry", occurred_at="2023-06-01T10:00:00Z").decode()
        + "\n"
        + line(
            customer_id="late-buyer", kind="purchase", occurred_at="2024-03-01T10:00:00Z"
        ).decode()
        + "\n"
    )
    assert run_cli("import", str(late), env=env).returncode == 0
    assert fit(env).returncode == 0

    for customer in ("browser", "late-buyer"):
        done = run_cli("analytics", "predict", customer, "--json", env=env)
        assert done.returncode == 0, done.stderr
        prediction = json.loads(done.stdout)
        assert [prediction[k] for k in ("p_alive", "expected_purchases", "clv")] == [None] * 3


def test_predict_for_an_unknown_customer_exits_2(store: dict[str, str]) -> None:
    env = store
    assert fit(env).returncode == 0

    done = run_cli("analytics", "predict", "nobody", env=env)

    assert done.returncode == 2
    assert "nobody" in done.stderr


def test_fitting_without_repeat_purchases_exits_2_in_one_line(
    sqlite_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "one-time.jsonl"
    source.write_text(
        "".join(line(customer_id=f"c-{i}", kind="purchase").decode() + "\n" for i in range(5))
    )
    env = {"LIFECYCLE_DATABASE_URL": sqlite_url}
    assert run_cli("import", str(source), env=env).returncode == 0

    done = run_cli("analytics", "fit", env=env)

    assert done.returncode == 2
    assert "repeat purchases" in done.stderr
    assert done.stderr.count("\n") == 1


def test_the_report_draws_the_tracking_of_the_latest_validation(
    store: dict[str, str], tmp_path: Path
) -> None:
    validated = validate(store, "--json")
    weeks = json.loads(validated.stdout)["tracking"]
    page = tmp_path / "report.html"

    written = run_cli("report", "--out", str(page), env=store)

    assert written.returncode == 0, written.stderr
    svg = page.read_text().split('<svg id="tracking"')[1].split("</svg>")[0]
    for curve in ("actual", "predicted"):
        points = svg.split(f'class="tracking-{curve}" points="')[1].split('"')[0].split()
        assert len(points) == len(weeks)
    assert svg.count('class="calibration-end"') == 1


def test_the_report_has_no_tracking_before_a_validation(
    store: dict[str, str], tmp_path: Path
) -> None:
    assert fit(store).returncode == 0
    page = tmp_path / "report.html"

    assert run_cli("report", "--out", str(page), env=store).returncode == 0
    assert 'id="tracking"' not in page.read_text()
    assert 'id="cohorts"' in page.read_text()
