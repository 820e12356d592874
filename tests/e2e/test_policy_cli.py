"""``lifecycle policy`` as a user drives it: show, history, diff and adopt, and a
recording process refusing a policy file other than the adopted one."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from lifecycle.domain.policy import PolicyText
from tests.conftest import run_cli, run_demo

FIXTURE_STORE = Path(__file__).resolve().parents[1] / "fixtures" / "release_0_1" / "store"
V2 = "version = 2\n[rules.engaged]\ntouchpoints = 1\n"


def message(customer: str, kind: str = "inquiry", day: int = 1) -> str:
    attributes = {"amount": "12.00"} if kind == "purchase" else {}
    return json.dumps(
        {
            "event_id": f"{customer}-{kind}-{day}",
            "customer_id": customer,
            "kind": kind,
            "channel": "web",
            "occurred_at": f"2024-01-{day:02d}T09:00:00+00:00",
            "source": "shop",
            "attributes": attributes,
        }
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"LIFECYCLE_DATABASE_URL": f"sqlite:///{tmp_path / 'lifecycle.db'}"}


@pytest.fixture
def recorded(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Three customers with an inquiry each; one has also bought."""
    feed = tmp_path / "feed.jsonl"
    lines = [message("ann"), message("bob"), message("cyd"), message("cyd", "purchase", 2)]
    feed.write_text("\n".join(lines) + "\n")
    imported = run_cli("import", str(feed), "--json", env=env)
    assert json.loads(imported.stdout)["recorded"] == 4
    return env


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    path = tmp_path / "v2.toml"
    path.write_text(V2)
    return path


def test_show_before_any_adoption_prints_what_will_be_adopted_and_adopts_nothing(
    env: dict[str, str],
) -> None:
    shown = run_cli("policy", "show", env=env)
    history = run_cli("policy", "history", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# not adopted yet")
    assert shown.stdout.endswith(PolicyText.default().text)
    assert history.stdout == ""


def test_show_prints_the_adopted_text_exactly_after_a_comment_line(
    recorded: dict[str, str], v2: Path
) -> None:
    run_cli("policy", "adopt", str(v2), "--actor", "ana", "--reason", "engage", env=recorded)
    shown = run_cli("policy", "show", env=recorded)
    first = run_cli("policy", "show", "--version", "1", env=recorded)
    header, text = shown.stdout.split("\n", 1)
    assert header.startswith("# version 2, adopted ") and "by ana: engage" in header
    assert text == V2
    assert first.stdout.split("\n", 1)[1] == PolicyText.default().text


def test_showing_a_version_never_adopted_exits_2(recorded: dict[str, str]) -> None:
    shown = run_cli("policy", "show", "--version", "5", env=recorded)
    assert shown.returncode == 2
    assert shown.stderr.count("\n") == 1
    assert "version 5 was never adopted" in shown.stderr


def test_history_lists_each_adoption_with_its_position_and_fingerprint(
    recorded: dict[str, str], v2: Path
) -> None:
    run_cli("policy", "adopt", str(v2), "--actor", "ana", "--reason", "engage", env=recorded)
    history = run_cli("policy", "history", "--json", env=recorded)
    adoptions = [json.loads(line) for line in history.stdout.splitlines()]
    assert [(a["version"], a["actor"]) for a in adoptions] == [(1, "lifecycle"), (2, "ana")]
    assert adoptions[1]["sha256"] == hashlib.sha256(V2.encode()).hexdigest()
    assert adoptions[0]["position"] < adoptions[1]["position"]


def test_diff_reports_stage_counts_and_the_matrix_and_exits_0(
    recorded: dict[str, str], v2: Path, tmp_path: Path
) -> None:
    out = tmp_path / "customers.jsonl"
    diff = run_cli("policy", "diff", str(v2), "--json", "--customers-out", str(out), env=recorded)
    assert diff.returncode == 0, diff.stderr
    report = json.loads(diff.stdout)
    assert (report["adopted"]["version"], report["candidate"]["version"]) == (1, 2)
    assert report["stages"]["exploration"] == {"now": 2, "candidate": 0}
    assert report["stages"]["awareness"] == {"now": 1, "candidate": 3}
    assert {"from": "exploration", "to": "awareness", "relationships": 2} in report["matrix"]
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"customer_id": "ann", "stage_now": "exploration", "stage_candidate": "awareness"},
        {"customer_id": "bob", "stage_now": "exploration", "stage_candidate": "awareness"},
    ]


def test_diff_for_people_shows_the_counts_and_the_matrix(
    recorded: dict[str, str], v2: Path
) -> None:
    diff = run_cli("policy", "diff", str(v2), "--now", "2026-01-01T00:00:00Z", env=recorded)
    assert diff.returncode == 0, diff.stderr
    assert "inactivity judged at 2026-01-01T00:00:00+00:00" in diff.stdout
    assert "from now (rows) to candidate (columns):" in diff.stdout
    assert "0 relationships would be in another stage" in diff.stdout  # all inactive by then


def test_diff_of_a_store_written_before_the_policy_was_in_the_log_writes_nothing(
    tmp_path: Path, v2: Path
) -> None:
    for database in FIXTURE_STORE.glob("lifecycle*.db"):
        shutil.copy2(database, tmp_path / database.name)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("lifecycle*.db")}
    env = {"LIFECYCLE_DATABASE_URL": f"sqlite:///{tmp_path / 'lifecycle.db'}"}

    diff = run_cli("policy", "diff", str(v2), "--json", env=env)

    assert diff.returncode == 0, diff.stderr
    assert json.loads(diff.stdout)["adopted"]["version"] == 1
    assert {p.name: p.read_bytes() for p in tmp_path.glob("lifecycle*.db")} == before


def test_adopting_an_older_version_exits_2_naming_the_rule(
    recorded: dict[str, str], v2: Path
) -> None:
    run_cli("policy", "adopt", str(v2), "--actor", "ana", "--reason", "engage", env=recorded)
    older = v2.with_name("v1.toml")
    older.write_text(PolicyText.default().text)
    adopted = run_cli(
        "policy", "adopt", str(older), "--actor", "ana", "--reason", "back", env=recorded
    )
    assert adopted.returncode == 2
    assert adopted.stderr.count("\n") == 1
    assert "versions only increase" in adopted.stderr


def test_adopt_reports_what_it_reevaluated(recorded: dict[str, str], v2: Path) -> None:
    adopted = run_cli(
        "policy", "adopt", str(v2), "--actor", "ana", "--reason", "engage", env=recorded
    )
    assert adopted.returncode == 0, adopted.stderr
    assert "adopted policy version 2" in adopted.stdout
    assert "re-evaluated 3 relationships: 2 moved to another stage" in adopted.stdout


def test_a_recording_process_with_another_policy_file_refuses_to_start(
    recorded: dict[str, str], v2: Path, tmp_path: Path
) -> None:
    feed = tmp_path / "more.jsonl"
    feed.write_text(message("dee") + "\n")
    head = run_cli("policy", "history", "--json", env=recorded).stdout

    refused = run_cli("import", str(feed), env={**recorded, "LIFECYCLE_POLICY_FILE": str(v2)})

    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "is version 2, but version 1 is adopted" in refused.stderr
    assert run_cli("state", "dee", env=recorded).returncode == 2
    assert run_cli("policy", "history", "--json", env=recorded).stdout == head


def test_the_first_import_adopts_the_policy_file_it_was_given(
    env: dict[str, str], v2: Path, tmp_path: Path
) -> None:
    feed = tmp_path / "feed.jsonl"
    feed.write_text(message("ann") + "\n")
    imported = run_cli("import", str(feed), env={**env, "LIFECYCLE_POLICY_FILE": str(v2)})
    state = run_cli("state", "ann", env=env)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(state.stdout)["stage"] == "awareness"


def test_the_demo_shows_what_the_sample_candidate_policy_would_change(tmp_path: Path) -> None:
    result = run_demo(100, tmp_path / "demo.db", "--direct")
    assert result.returncode == 0, result.stderr
    assert "what if lifecycle/domain/policies/candidate-example.toml were adopted?" in result.stdout
    assert "policy diff: adopted version 1 against candidate version 2" in result.stdout
