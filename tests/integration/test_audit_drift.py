"""`lifecycle audit drift`: live read models against a rebuild from the log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.drift import find_drift
from projections.service import catch_up
from tests.builders import touchpoint
from tests.conftest import run_cli


def record_some(app: LifecycleApplication) -> None:
    app.record_batch(
        [
            touchpoint("purchase", 0, customer="a"),
            touchpoint("purchase", 3, customer="a"),
            touchpoint("complaint", 4, customer="b", complaint_id="k-1"),
            touchpoint("inquiry", 5, customer="c"),
        ]
    )


def test_live_read_models_equal_a_rebuild(app: LifecycleApplication, settings: Settings) -> None:
    record_some(app)
    catch_up(Components(settings), app=app)
    report = find_drift(Components(settings))
    assert report.differences == []
    assert report.rows_compared > 0


def test_drift_catches_the_live_tables_up_before_comparing(
    app: LifecycleApplication, settings: Settings
) -> None:
    record_some(app)
    assert find_drift(Components(settings)).differences == []


def test_an_edited_live_row_is_named_by_its_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lifecycle.db'}"
    env = {"LIFECYCLE_DATABASE_URL": url}
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"event_id":"e1","customer_id":"cust-9","kind":"purchase","channel":"web",'
        '"occurred_at":"2024-01-01T10:00:00Z","source":"shop","attributes":{"amount":"5"}}\n'
    )
    assert run_cli("import", str(source), env=env).returncode == 0
    assert run_cli("project", "--once", env=env).returncode == 0
    assert run_cli("audit", "drift", env=env).returncode == 0
    summary_db = tmp_path / "lifecycle.summary.db"
    with sqlite3.connect(summary_db) as db:
        table = next(
            name
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if name.startswith("summary_") and "__" not in name
        )
        columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        assert "stage" in columns, columns
        db.execute(f"UPDATE {table} SET stage = 'commitment'")
    result = run_cli("audit", "drift", env=env)
    assert result.returncode == 1
    assert "cust-9" in result.stdout
    assert "rows differ" in result.stderr
