"""The audit commands as an auditor and an administrator run them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import run_cli

KEY = "e2e-audit-key-0123456789abcdef"
EMAIL = "grace.h@example.com"
POLICY_EVENTS = 2
"""The policy stream's first events (started, the built-in policy adopted), written by
the first import before its own."""


def message(customer: str, number: int, kind: str, **extra: object) -> str:
    body: dict[str, object] = {
        "event_id": f"{customer}-{number}",
        "customer_id": customer,
        "kind": kind,
        "channel": "web",
        "occurred_at": f"2024-0{1 + number}-10T09:00:00+02:00",
        "source": "shop",
        **extra,
    }
    return json.dumps(body)


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, str]:
    """A recorded store: two customers, one of whom gave personal data."""
    lines = [
        message("grace", 0, "inquiry", personal={"name": "Grace H", "email": EMAIL}),
        message("grace", 1, "purchase", attributes={"amount": "30.00"}),
        message("linus", 0, "trial"),
        message("linus", 1, "purchase", attributes={"amount": "12.00"}),
    ]
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {
        "LIFECYCLE_DATABASE_URL": f"sqlite:///{tmp_path / 'lifecycle.db'}",
        "LIFECYCLE_AUDIT_HMAC_KEY": KEY,
    }
    assert run_cli("import", str(feed), env=env).returncode == 0
    return env


def test_seal_prints_a_signed_checkpoint(workspace: dict[str, str]) -> None:
    result = run_cli("audit", "seal", env=workspace)
    checkpoint = json.loads(result.stdout)
    assert result.returncode == 0
    logged = POLICY_EVENTS + 8
    assert (checkpoint["sequence"], checkpoint["position"], checkpoint["events"]) == (
        1,
        logged,
        logged,
    )
    assert len(checkpoint["signature"]) == 64


def test_verify_passes_on_a_clean_store_with_counts(workspace: dict[str, str]) -> None:
    run_cli("audit", "seal", env=workspace)
    result = run_cli("audit", "verify", "--json", env=workspace)
    assert result.returncode == 0
    assert json.loads(result.stdout)["events"] == POLICY_EVENTS + 8


def test_verify_fails_naming_the_edited_event(workspace: dict[str, str], tmp_path: Path) -> None:
    run_cli("audit", "seal", env=workspace)
    with sqlite3.connect(tmp_path / "lifecycle.db") as db:
        db.execute(
            "UPDATE stored_events SET state = replace(state, '30.00', '3.00') "
            "WHERE instr(state, '30.00') > 0"
        )
    result = run_cli("audit", "verify", env=workspace)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert f"customer grace, version 3, position {POLICY_EVENTS + 3}" in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_against_checkpoints_kept_outside_the_database(
    workspace: dict[str, str], tmp_path: Path
) -> None:
    kept = tmp_path / "checkpoints.jsonl"
    kept.write_text(run_cli("audit", "seal", env=workspace).stdout, encoding="utf-8")
    (tmp_path / "lifecycle.audit.db").unlink()
    result = run_cli("audit", "verify", "--checkpoints", str(kept), "--json", env=workspace)
    assert result.returncode == 0
    assert json.loads(result.stdout)["outside_checkpoints"] == 1


def test_verify_one_customer(workspace: dict[str, str]) -> None:
    run_cli("audit", "seal", env=workspace)
    result = run_cli("audit", "verify", "--customer", "linus", "--json", env=workspace)
    assert result.returncode == 0
    assert json.loads(result.stdout)["events"] == 4


def test_sealing_without_the_key_is_refused_in_one_line(workspace: dict[str, str]) -> None:
    result = run_cli("audit", "seal", env={**workspace, "LIFECYCLE_AUDIT_HMAC_KEY": ""})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("lifecycle: error: ")
    assert "LIFECYCLE_AUDIT_HMAC_KEY" in result.stderr


def test_an_export_verifies_offline_and_an_edited_line_does_not(
    workspace: dict[str, str], tmp_path: Path
) -> None:
    run_cli("audit", "seal", env=workspace)
    out = tmp_path / "export"
    assert run_cli("export", "--out", str(out), env=workspace).returncode == 0
    offline = {"LIFECYCLE_AUDIT_HMAC_KEY": KEY, "LIFECYCLE_DATABASE_URL": "sqlite:///nowhere.db"}
    assert run_cli("audit", "verify", "--export", str(out), env=offline).returncode == 0
    events = out / "events.jsonl"
    events.write_text(events.read_text().replace('"linus"', '"linux"', 1), encoding="utf-8")
    result = run_cli("audit", "verify", "--export", str(out), env=offline)
    assert result.returncode == 1
    assert "line " in result.stderr


def test_history_lists_times_version_position_and_hash(workspace: dict[str, str]) -> None:
    result = run_cli("history", "grace", env=workspace)
    first_touchpoint = result.stdout.splitlines()[1]
    assert result.returncode == 0
    assert first_touchpoint.startswith(f"v2    #{POLICY_EVENTS + 2:<8} ")
    assert "occurred 2024-01-10T09:00:00+02:00" in first_touchpoint
    assert "recorded " in first_touchpoint
    assert f"email={EMAIL}" in first_touchpoint
    assert first_touchpoint.split("hash ")[1].isalnum()


def test_forget_erases_personal_data_and_the_chain_still_verifies(
    workspace: dict[str, str], tmp_path: Path
) -> None:
    run_cli("audit", "seal", env=workspace)
    forget = run_cli("forget", "grace", "--reason", "erasure request", env=workspace)
    history = run_cli("history", "grace", "--json", env=workspace)
    events = [json.loads(line) for line in history.stdout.splitlines()]
    assert forget.returncode == 0
    assert events[1]["personal"] == {"erased": True}
    assert events[-1]["type"] == "PersonalDataErased"
    assert EMAIL not in history.stdout
    assert run_cli("audit", "verify", env=workspace).returncode == 0
    files = b"".join(path.read_bytes() for path in tmp_path.glob("lifecycle*"))
    assert EMAIL.encode() not in files
