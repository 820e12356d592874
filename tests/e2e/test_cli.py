"""The `lifecycle` command as a user drives it, in a subprocess, on the embedded default store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.builders import line, message_v2
from tests.conftest import run_cli, run_demo


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def db_env(workdir: Path) -> dict[str, str]:
    return {"LIFECYCLE_DATABASE_URL": f"sqlite:///{workdir / 'lifecycle.db'}"}


def write_lines(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_import_records_touchpoints_and_prints_the_counts(workdir: Path) -> None:
    source = write_lines(
        workdir / "in.jsonl",
        line(kind="purchase", customer_id="c-1"),
        line(kind="inquiry", customer_id="c-2"),
    )
    result = run_cli("import", str(source), env=db_env(workdir))
    assert result.returncode == 0, result.stderr
    assert "recorded 2, duplicates 0, rejected 0" in result.stdout
    assert not (workdir / "in.jsonl.rejects.jsonl").exists()


def test_import_records_both_versions_of_the_message_and_rejects_an_unknown_one(
    workdir: Path,
) -> None:
    source = write_lines(
        workdir / "in.jsonl",
        line(kind="purchase", customer_id="c-1"),
        json.dumps(message_v2("purchase", customer_id="c-1", correlation_id="k-1")).encode(),
        line(customer_id="c-1", schema_version=3),
    )

    result = run_cli("import", str(source), "--json", env=db_env(workdir))
    history = run_cli("history", "c-1", "--json", env=db_env(workdir))

    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert (counts["recorded"], counts["rejected_by_code"]) == (
        2,
        {"unsupported_schema_version": 1},
    )
    recorded = [
        json.loads(event)["data"]
        for event in history.stdout.splitlines()
        if json.loads(event)["type"] == "TouchpointRecorded"
    ]
    assert [(r["schema_version"], r["correlation_id"]) for r in recorded] == [(1, None), (2, "k-1")]


def test_importing_the_same_file_twice_records_nothing_the_second_time(workdir: Path) -> None:
    source = write_lines(workdir / "in.jsonl", *(line(customer_id=f"c-{i}") for i in range(20)))
    run_cli("import", str(source), env=db_env(workdir))
    again = run_cli("import", str(source), "--json", env=db_env(workdir))
    assert again.returncode == 0
    assert json.loads(again.stdout)["recorded"] == 0
    assert json.loads(again.stdout)["duplicates"] == 20


def test_import_reads_standard_input(workdir: Path) -> None:
    result = run_cli("import", "-", env=db_env(workdir), input=line() + b"\n", cwd=workdir)
    assert result.returncode == 0
    assert "recorded 1" in result.stdout


def test_rejected_lines_go_to_the_rejects_file_with_line_code_and_reason(workdir: Path) -> None:
    source = write_lines(
        workdir / "in.jsonl",
        line(customer_id="good-1"),
        b"{this is not json",
        line(kind="teleportation"),
        line(kind="purchase", attributes={"amount": "-3"}),
        line(customer_id="good-2"),
    )
    result = run_cli("import", str(source), env=db_env(workdir))
    assert result.returncode == 0
    assert "recorded 2, duplicates 0, rejected 3" in result.stdout
    rejects = [json.loads(x) for x in (workdir / "in.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["error_code"]) for r in rejects] == [
        (2, "invalid_json"),
        (3, "unknown_kind"),
        (4, "invalid_attribute"),
    ]
    assert "teleportation" in rejects[1]["original"]
    assert all(r["reason"] for r in rejects)


def test_importing_a_missing_file_exits_2_with_one_line(workdir: Path) -> None:
    result = run_cli("import", str(workdir / "nope.jsonl"), env=db_env(workdir))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["state", "c-1", "--version", "zero"],
        ["state", "c-1", "--as-of", "yesterday"],
        ["stage", "c-1", "--to", "nirvana", "--reason", "x", "--actor", "y"],
        ["sweep", "--now", "2024-01-01T00:00:00"],
        ["no-such-command"],
    ],
)
def test_bad_usage_exits_2_without_a_traceback(workdir: Path, args: list[str]) -> None:
    result = run_cli(*args, env=db_env(workdir))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_an_invalid_database_url_exits_2_naming_it(workdir: Path) -> None:
    result = run_cli("sweep", env={"LIFECYCLE_DATABASE_URL": "mysql://x"})
    assert result.returncode == 2
    assert "mysql://x" in result.stderr and "Traceback" not in result.stderr


def test_a_command_against_a_database_that_does_not_answer_exits_1_in_one_line() -> None:
    from consumers.broker import free_port

    nobody_listens = f"postgresql://lifecycle:secret@127.0.0.1:{free_port()}/lifecycle"
    result = run_cli("state", "c-1", env={"LIFECYCLE_DATABASE_URL": nobody_listens})
    assert result.returncode == 1
    assert result.stderr.startswith("lifecycle: the database is unavailable: ")
    assert result.stderr.strip().count("\n") == 0


def test_an_invalid_policy_file_exits_2_naming_the_problem(workdir: Path) -> None:
    policy = workdir / "policy.toml"
    policy.write_text("version = 1\n[rules.loyal]\nspan_days = 'long'\n")
    result = run_cli("sweep", "--policy-file", str(policy), env=db_env(workdir))
    assert result.returncode == 2
    assert "rules.loyal.span_days" in result.stderr


def test_history_and_state_of_an_unknown_customer_exit_2(workdir: Path) -> None:
    for command in ("history", "state"):
        result = run_cli(command, "nobody", env=db_env(workdir))
        assert result.returncode == 2
        assert "nobody" in result.stderr


@pytest.fixture
def imported(workdir: Path) -> Path:
    source = write_lines(
        workdir / "in.jsonl",
        line(kind="purchase", customer_id="c-1", occurred_at="2024-01-01T10:00:00Z"),
        line(kind="purchase", customer_id="c-1", occurred_at="2024-01-02T10:00:00Z"),
    )
    assert run_cli("import", str(source), env=db_env(workdir)).returncode == 0
    return workdir


def test_history_lists_the_events_of_a_customer(imported: Path) -> None:
    result = run_cli("history", "c-1", env=db_env(imported))
    assert result.returncode == 0
    assert "exploration -> awareness" in result.stdout
    assert "awareness -> expansion" in result.stdout


def test_history_as_json_lines_follows_contract_3(imported: Path) -> None:
    result = run_cli("history", "c-1", "--json", env=db_env(imported))
    events = [json.loads(x) for x in result.stdout.splitlines()]
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]
    assert {
        "event_id",
        "relationship_id",
        "customer_id",
        "type",
        "occurred_at",
        "recorded_at",
        "data",
    } <= set(events[0])


def test_state_now_and_at_a_version(imported: Path) -> None:
    now = json.loads(run_cli("state", "c-1", env=db_env(imported)).stdout)
    then = json.loads(run_cli("state", "c-1", "--version", "3", env=db_env(imported)).stdout)
    assert (now["stage"], now["version"]) == ("expansion", 5)
    assert (then["stage"], then["version"]) == ("awareness", 3)


def test_state_as_of_a_recorded_time(imported: Path) -> None:
    result = run_cli("state", "c-1", "--as-of", "2999-01-01T00:00:00Z", env=db_env(imported))
    assert json.loads(result.stdout)["stage"] == "expansion"


def test_stage_moves_a_relationship_by_hand(imported: Path) -> None:
    result = run_cli(
        "stage",
        "c-1",
        "--to",
        "commitment",
        "--reason",
        "key account",
        "--actor",
        "ana",
        env=db_env(imported),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(run_cli("state", "c-1", env=db_env(imported)).stdout)["stage"] == "commitment"


def test_a_manual_change_to_the_current_stage_exits_2(imported: Path) -> None:
    result = run_cli(
        "stage", "c-1", "--to", "expansion", "--reason", "x", "--actor", "y", env=db_env(imported)
    )
    assert result.returncode == 2
    assert "already in expansion" in result.stderr


def test_sweep_dissolves_inactive_relationships(imported: Path) -> None:
    result = run_cli("sweep", "--now", "2025-06-01T00:00:00Z", env=db_env(imported))
    assert result.returncode == 0
    assert "dissolved 1" in result.stdout


def test_schemas_export_writes_the_contract_schemas(workdir: Path) -> None:
    result = run_cli("schemas", "export", "--out", str(workdir / "out"))
    assert result.returncode == 0
    assert (
        json.loads((workdir / "out" / "touchpoint.v1.schema.json").read_text())["title"]
        == "Touchpoint"
    )


def test_every_subcommand_has_help() -> None:
    for command in ("import", "history", "state", "stage", "sweep", "schemas", "demo", "simulate"):
        result = run_cli(command, "--help")
        assert result.returncode == 0
        assert "usage: lifecycle" in result.stdout


HEAVY_MODULES = (
    "psycopg",
    "kafka",
    "consumers",
    "projections.wiring",
    "fastapi",
    "uvicorn",
    "structlog",
    "rich",
    "cryptography",
    "numpy",
    "scipy",
)
"""What a point-in-time read on SQLite never needs, each costing start-up time."""


def modules_loaded_by(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """Every module `lifecycle ARGS` imports, from Python's import-time report."""
    result = run_cli(*args, env={**(env or {}), "PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }


def within(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages))


def test_help_loads_neither_pydantic_nor_the_event_store_nor_any_heavy_module() -> None:
    loaded = modules_loaded_by("--help")
    assert within(loaded, (*HEAVY_MODULES, "pydantic", "pydantic_settings", "eventsourcing")) == []


def test_state_loads_neither_postgres_kafka_the_read_side_nor_the_logging_library(
    imported: Path,
) -> None:
    assert within(modules_loaded_by("state", "c-1", env=db_env(imported)), HEAVY_MODULES) == []


def test_the_demo_walks_every_path_of_the_lifecycle(workdir: Path) -> None:
    result = run_demo(400, workdir / "demo.db", "--direct")
    assert result.returncode == 0, result.stderr
    for rule in ("first-purchase", "engaged", "repeat-purchase", "referral", "loyal", "renewal",
                 "cancelled", "inactivity", "reactivation"):  # fmt: skip
        count = next(x for x in result.stdout.splitlines() if x.strip().startswith(rule + " "))
        assert int(count.split()[-1]) > 0, count
