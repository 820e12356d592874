"""A store written by release 0.1 (the release before the layout change) opens with the
current code, which gives the answers that release gave and records onto it.

The store and the release's answers are in ``tests/fixtures/release_0_1/`` (its
``generate.py`` says how they were made). Only the outer interfaces are used: the
``lifecycle`` command in a subprocess and the HTTP API of ``lifecycle serve``, so that
modules may move and event classes gain versions without touching this test.

The rule: an answer may gain fields; none may change or vanish. A JSON object of the
release's answer must have each of its keys in the current answer, with a value that
satisfies the same rule; lists are compared item by item and have the same length;
anything else is equal, type included.
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.e2e.read.test_read_cli import _start_serving

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release_0_1"
GOLDEN = FIXTURE / "golden"


def _golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


META: dict[str, Any] = _golden("meta.json")
CLI: list[dict[str, Any]] = _golden("cli.json")
API: list[dict[str, Any]] = _golden("api.json")
AUDIT: list[dict[str, Any]] = _golden("audit.json")
CUSTOMERS: dict[str, str] = META["customers"]
KEYS = {"reader": "release-test-reader", "auditor": "release-test-auditor"}
KEYS["admin"] = "release-test-admin"


def _names(answers: list[dict[str, Any]]) -> list[str]:
    return [answer["name"] for answer in answers]


def assert_kept(golden: Any, actual: Any, where: str = "answer") -> None:
    """``actual`` says all that ``golden`` said: fields may be added, none changed or lost."""
    if isinstance(golden, dict):
        assert isinstance(actual, dict), f"{where}: an object became {actual!r}"
        for key, value in golden.items():
            assert key in actual, f"{where}.{key} vanished (it was {value!r})"
            assert_kept(value, actual[key], f"{where}.{key}")
    elif isinstance(golden, list):
        assert isinstance(actual, list), f"{where}: a list became {actual!r}"
        assert len(actual) == len(golden), f"{where}: {len(actual)} items, not {len(golden)}"
        for index, (then, now) in enumerate(zip(golden, actual, strict=True)):
            assert_kept(then, now, f"{where}[{index}]")
    else:
        assert (type(actual), actual) == (type(golden), golden), (
            f"{where} is {actual!r}, release 0.1 said {golden!r}"
        )


def _copy_store(directory: Path) -> dict[str, str]:
    """A copy of the release's store in ``directory``, and the settings that open it."""
    for database in (FIXTURE / "store").glob("lifecycle*.db"):
        shutil.copy2(database, directory / database.name)
    return {
        "LIFECYCLE_DATABASE_URL": f"sqlite:///{directory / 'lifecycle.db'}",
        "LIFECYCLE_AUDIT_HMAC_KEY": META["audit_hmac_key"],
    }


def _json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def old_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _copy_store(tmp_path_factory.mktemp("release-0-1"))


@pytest.fixture(scope="module")
def cli_answers(old_store: dict[str, str]) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every history and state question of the goldens, asked of the current command
    (concurrently: they only read)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(lambda golden: run_cli(*golden["args"], env=old_store), CLI)
        return dict(zip(_names(CLI), done, strict=True))


@pytest.mark.parametrize(
    "golden", [c for c in CLI if c["args"][0] == "history"], ids=lambda c: c["name"]
)
def test_history_shows_every_event_as_release_0_1_did(
    golden: dict[str, Any], cli_answers: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    done = cli_answers[golden["name"]]

    assert done.returncode == golden["exit_code"], done.stderr
    assert_kept(golden["stdout"], _json_lines(done.stdout))


@pytest.mark.parametrize(
    "golden", [c for c in CLI if c["args"][0] == "state"], ids=lambda c: c["name"]
)
def test_state_now_at_a_version_and_as_of_a_time_is_what_release_0_1_said(
    golden: dict[str, Any], cli_answers: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    done = cli_answers[golden["name"]]

    assert done.returncode == golden["exit_code"], done.stderr
    assert_kept(golden["stdout"], json.loads(done.stdout))


@pytest.fixture(scope="module")
def exported(
    old_store: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("export")
    return run_cli("export", "--out", str(out), env=old_store), out


def test_export_writes_the_lines_release_0_1_wrote(
    exported: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    done, out = exported
    golden = _json_lines((GOLDEN / "export-events.jsonl").read_text(encoding="utf-8"))

    assert done.returncode == 0, done.stderr
    assert_kept(golden, _json_lines((out / "events.jsonl").read_text(encoding="utf-8")))


def test_export_manifest_names_the_same_events_head_and_checkpoint(
    exported: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    done, out = exported

    assert done.returncode == 0, done.stderr
    # exported_at and the signature over it are the export's own (left out of the golden).
    assert_kept(_golden("export-manifest.json"), json.loads((out / "manifest.json").read_text()))


def _verified_counts(stdout: str) -> dict[str, str]:
    """``verified: events 3, streams 1, …`` as {"events": "3", "streams": "1", …}."""
    assert stdout.startswith("verified: "), stdout
    pairs = (part.rsplit(" ", 1) for part in stdout.removeprefix("verified: ").split(", "))
    return {name: value.strip() for name, value in pairs}


@pytest.mark.parametrize("golden", AUDIT, ids=lambda a: a["name"])
def test_audit_verify_passes_with_the_counts_release_0_1_gave(
    golden: dict[str, Any],
    old_store: dict[str, str],
    exported: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    # The offline check reads the export the current code wrote of the old store.
    args = [str(exported[1]) if arg == "EXPORT" else arg for arg in golden["args"]]

    done = run_cli(*args, env=old_store)

    assert done.returncode == golden["exit_code"], done.stderr
    if "--json" in args:
        assert_kept(golden["stdout"], json.loads(done.stdout))
    else:
        assert_kept(_verified_counts(golden["stdout"]), _verified_counts(done.stdout))


@pytest.fixture(scope="module")
def drift_around_a_replay(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """On a copy of the release's store: its read models (written by release 0.1) against
    a rebuild by the current code; then a rebuild shared between processes swapped in,
    against a rebuild by one process."""
    store = _copy_store(tmp_path_factory.mktemp("replayed"))
    before = run_cli("audit", "drift", env=store)
    replayed = run_cli("replay", "--workers", "2", env=store)
    after = run_cli("audit", "drift", env=store)
    return {"before": before, "replayed": replayed, "after": after}


def test_the_read_models_release_0_1_wrote_equal_a_rebuild_under_the_new_event_versions(
    drift_around_a_replay: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    done = drift_around_a_replay["before"]

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("no drift")


def test_a_rebuild_in_parallel_processes_of_the_old_store_gives_the_same_rows(
    drift_around_a_replay: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    replayed, after = drift_around_a_replay["replayed"], drift_around_a_replay["after"]

    assert replayed.returncode == 0, replayed.stderr
    assert after.returncode == 0, after.stdout + after.stderr
    assert after.stdout.startswith("no drift")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``lifecycle serve`` (one worker, projecting) over a copy of the release's store."""
    store = _copy_store(tmp_path_factory.mktemp("served"))
    keys = ",".join(f"{key}:{role}" for role, key in KEYS.items())
    server, base = _start_serving(
        store["LIFECYCLE_DATABASE_URL"],
        "--workers",
        "1",
        env={"LIFECYCLE_API_KEYS": keys, "LIFECYCLE_API_READY_MAX_LAG": "0"},
    )
    try:
        assert _get(base, "/readyz", [], None)[0] == 200, "serve did not catch up"
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def _get(
    base: str, path: str, query: list[list[str]], key: str | None
) -> tuple[int, str | None, Any]:
    """Status, position header and JSON body of a GET."""
    pairs = [(name, value) for name, value in query]
    url = base + path + (f"?{urllib.parse.urlencode(pairs)}" if pairs else "")
    request = urllib.request.Request(url)
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    return status, headers.get("X-Projection-Position"), json.loads(body)


@pytest.mark.parametrize("golden", API, ids=lambda a: a["name"])
def test_the_read_api_answers_as_release_0_1_did(golden: dict[str, Any], served: str) -> None:
    key = KEYS[golden["role"]] if golden["role"] else None

    status, position, body = _get(served, golden["path"], golden["query"], key)

    assert status == golden["status"], body
    assert position == golden["position_header"]
    assert_kept(golden["body"], body)


# Recording onto the old store ----------------------------------------------------------

NEW_AT = META["population"]["simulation_end"]  # after every old touchpoint, never in the future
NEW_TOUCHPOINTS = {
    "erased": {
        "kind": "inquiry",
        "channel": "email",
        "source": "helpdesk",
        "personal": {"name": "Returning Customer", "email": "returning@example.com"},
    },
    # Version 2 messages (Contract 6), with the trace that every event they cause carries.
    "dissolved_by_inactivity": {
        "schema_version": 2,
        "kind": "purchase",
        "channel": "web",
        "producer": "shop",
        "correlation_id": "upgrade-checkout-1",
        "attributes": {"total": {"amount": "25.00", "currency": "EUR"}, "category": "books"},
    },
    # A relationship the old release snapshotted: it is loaded from that snapshot.
    "committed": {
        "schema_version": 2,
        "kind": "survey",
        "channel": "email",
        "producer": "marketing",
        "correlation_id": "upgrade-survey-1",
        "attributes": {"score": 9},
    },
    "manual": {
        "kind": "purchase",
        "channel": "phone",
        "source": "shop",
        "attributes": {"amount": "12.50"},
    },
}
VERSION_2_ROLES = [role for role, m in NEW_TOUCHPOINTS.items() if m.get("schema_version") == 2]


FIRST_ADOPTION_EVENTS = 2
"""The policy stream's first events (started, the built-in policy adopted), which the
first recording process writes into a store that has none (release 0.1's had none)."""


def _new_event_id(role: str) -> str:
    return f"after-upgrade-{role}"


@pytest.fixture(scope="module")
def recorded_onto(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the release's store with one new touchpoint for each of four of its
    customers (the erased one among them), imported and sealed by the current code."""
    directory = tmp_path_factory.mktemp("recorded-onto")
    store = _copy_store(directory)
    feed = directory / "new.jsonl"
    messages = [
        {
            "event_id": _new_event_id(role),
            "customer_id": CUSTOMERS[role],
            "occurred_at": NEW_AT,
            **fields,
        }
        for role, fields in NEW_TOUCHPOINTS.items()
    ]
    feed.write_text("".join(json.dumps(m) + "\n" for m in messages), encoding="utf-8")
    imported = run_cli("import", str(feed), "--json", env=store)
    sealed = run_cli("audit", "seal", env=store)
    histories = {
        role: run_cli("history", CUSTOMERS[role], "--json", env=store) for role in NEW_TOUCHPOINTS
    }
    exported = run_cli("export", "--out", str(directory / "export"), env=store)
    return {
        "store": store,
        "imported": imported,
        "sealed": sealed,
        "histories": histories,
        "exported": (exported, directory / "export"),
    }


def _old_history(role: str) -> list[dict[str, Any]]:
    golden: list[dict[str, Any]] = next(c for c in CLI if c["name"] == f"history {role}")["stdout"]
    return golden


def test_new_touchpoints_are_recorded_for_customers_of_the_old_store(
    recorded_onto: dict[str, Any],
) -> None:
    done = recorded_onto["imported"]

    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert (counts["recorded"], counts["duplicates"], counts["rejected"]) == (4, 0, 0)


def test_audit_verify_passes_once_new_events_are_sealed_onto_the_old_log(
    recorded_onto: dict[str, Any],
) -> None:
    old = next(a for a in AUDIT if a["name"] == "verify --json")["stdout"]
    new_events = sum(
        len(_json_lines(done.stdout)) - len(_old_history(role))
        for role, done in recorded_onto["histories"].items()
    )
    # The first recording process adopted the built-in policy: the policy stream started.
    new_events += FIRST_ADOPTION_EVENTS

    sealed = recorded_onto["sealed"]
    verified = run_cli("audit", "verify", "--json", env=recorded_onto["store"])

    assert sealed.returncode == 0, sealed.stderr
    assert verified.returncode == 0, verified.stderr
    counts = json.loads(verified.stdout)
    assert counts["events"] == old["events"] + new_events
    assert counts["checkpoints"] == old["checkpoints"] + 1
    assert counts["unsealed_events"] == 0
    assert json.loads(sealed.stdout)["position"] == counts["sealed_through"]


@pytest.mark.parametrize("role", list(NEW_TOUCHPOINTS))
def test_history_shows_the_new_events_chained_after_the_old_ones(
    role: str, recorded_onto: dict[str, Any]
) -> None:
    done = recorded_onto["histories"][role]
    old = _old_history(role)

    assert done.returncode == 0, done.stderr
    events = _json_lines(done.stdout)
    assert_kept(old, events[: len(old)], "old events")
    new = events[len(old) :]
    assert new, "no new event"
    assert [e["version"] for e in new] == list(range(old[-1]["version"] + 1, len(events) + 1))
    assert new[0]["previous_hash"] == old[-1]["hash"]
    assert all(e["previous_hash"] == p["hash"] for p, e in itertools.pairwise(new))
    assert min(e["position"] for e in new) > max(e["position"] for e in old)
    recorded = [e["data"]["event_id"] for e in new if e["type"] == "TouchpointRecorded"]
    assert recorded == [_new_event_id(role)]


def test_touchpoints_the_old_store_recorded_are_duplicates_when_delivered_again(
    tmp_path: Path,
) -> None:
    store = _copy_store(tmp_path)
    again = []
    for role in ("committed", "reactivated", "erased"):
        data = next(e for e in _old_history(role) if e["type"] == "TouchpointRecorded")["data"]
        fields = ("event_id", "customer_id", "kind", "channel", "occurred_at", "source")
        again.append({**{field: data[field] for field in fields}, "attributes": data["attributes"]})
    feed = tmp_path / "again.jsonl"
    feed.write_text("".join(json.dumps(m) + "\n" for m in again), encoding="utf-8")

    done = run_cli("import", str(feed), "--json", env=store)

    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert (counts["recorded"], counts["duplicates"], counts["rejected"]) == (0, 3, 0)


def test_personal_data_arriving_after_the_erasure_is_recorded_erased(
    recorded_onto: dict[str, Any],
) -> None:
    done = recorded_onto["histories"]["erased"]

    new = _json_lines(done.stdout)[len(_old_history("erased")) :]
    assert [e["personal"] for e in new if e["type"] == "TouchpointRecorded"] == [{"erased": True}]
    assert "Returning Customer" not in done.stdout
    assert "returning@example.com" not in done.stdout


def test_a_purchase_reactivates_a_relationship_the_old_sweep_dissolved(
    recorded_onto: dict[str, Any],
) -> None:
    state = run_cli("state", CUSTOMERS["dissolved_by_inactivity"], env=recorded_onto["store"])
    old = next(c for c in CLI if c["name"] == "state dissolved_by_inactivity")["stdout"]

    assert state.returncode == 0, state.stderr
    now = json.loads(state.stdout)
    assert old["stage"] == "dissolution"
    assert (now["cycle"], now["stage"]) == (old["cycle"] + 1, "awareness")


@pytest.mark.parametrize("role", VERSION_2_ROLES)
def test_every_event_a_version_2_touchpoint_causes_on_the_old_store_carries_its_trace(
    role: str, recorded_onto: dict[str, Any]
) -> None:
    message = NEW_TOUCHPOINTS[role]
    new = _json_lines(recorded_onto["histories"][role].stdout)[len(_old_history(role)) :]

    assert {(e["schema_version"], e["correlation_id"], e["producer"]) for e in new} == {
        (2, message["correlation_id"], message["producer"])
    }
    (touchpoint,) = [e for e in new if e["type"] == "TouchpointRecorded"]
    assert touchpoint["data"]["schema_version"] == 2
    assert touchpoint["data"]["source"] == touchpoint["data"]["producer"] == message["producer"]


def test_a_version_2_purchase_is_recorded_with_the_amount_and_currency_every_purchase_has(
    recorded_onto: dict[str, Any],
) -> None:
    role = "dissolved_by_inactivity"
    new = _json_lines(recorded_onto["histories"][role].stdout)[len(_old_history(role)) :]

    (touchpoint,) = [e for e in new if e["type"] == "TouchpointRecorded"]
    assert touchpoint["data"]["attributes"] == {
        "amount": "25.00",
        "currency": "EUR",
        "category": "books",
    }
    assert [e["data"]["rule"] for e in new if e["type"] == "StageChanged"] == [
        "reactivation",
        "first-purchase",
    ]


@pytest.mark.parametrize("role", list(NEW_TOUCHPOINTS))
def test_history_reads_the_old_events_upcast_with_their_source_as_producer_and_no_trace(
    role: str, recorded_onto: dict[str, Any]
) -> None:
    old = _json_lines(recorded_onto["histories"][role].stdout)[: len(_old_history(role))]

    for event in old:
        assert (event["schema_version"], event["correlation_id"]) == (2, None)
        assert "class_version" not in event["data"]
        if event["type"] == "TouchpointRecorded":
            assert event["producer"] == event["data"]["producer"] == event["data"]["source"]


def test_export_writes_the_old_events_as_stored_and_the_new_ones_with_their_class_version(
    recorded_onto: dict[str, Any],
) -> None:
    done, out = recorded_onto["exported"]
    golden = _json_lines((GOLDEN / "export-events.jsonl").read_text(encoding="utf-8"))

    assert done.returncode == 0, done.stderr
    lines = _json_lines((out / "events.jsonl").read_text(encoding="utf-8"))
    old, new = lines[: len(golden)], lines[len(golden) :]
    assert_kept(golden, old)
    assert all("producer" not in line["data"] for line in old)  # stored bytes never rewritten
    assert new
    # The relationships' new events are at class version 2; the policy's stream, adopted
    # by the first process that recorded onto the old store, names no customer.
    relationships = [line for line in new if line["customer_id"] is not None]
    assert {line["data"].get("class_version") for line in relationships} == {2}
    assert {line["type"] for line in new if line["customer_id"] is None} <= {
        "PolicyStreamStarted",
        "PolicyAdopted",
    }
    verified = run_cli("audit", "verify", "--export", str(out), env=recorded_onto["store"])
    assert verified.returncode == 0, verified.stderr
