"""The console as people use it, in headless Chromium against `lifecycle serve`: a key
entered once, a customer found and opened by keyboard, their timeline with hashes, seal
and personal data, the stage at a chosen date, a manager's book, the funnel and the dead
letters (re-driven by an admin, on the real broker); and what a reader's key does not
show. A screenshot of each page is written under the test's
directory (and the customer's page to ``LIFECYCLE_CONSOLE_SCREENSHOT`` when set: the
README's picture)."""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from consumers.broker import EmbeddedBroker, Topics
from lifecycle.audit.sealing import seal
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Channel, Kind
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.settings import Settings
from tests.browser import Browser, Tab
from tests.e2e.read.test_read_cli import _start_serving
from tests.kafka_support import dead_letter, read_topic, topics_with_dead_letters

AUDIT_KEY = "console-test-audit-key-0123456789"
AUDITOR_KEY = "auditor-key-of-the-console-test"
READER_KEY = "reader-key-of-the-console-test"
ADMIN_KEY = "admin-key-of-the-console-test"
CUSTOMER = "team/Ada ä?#1"
START = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
SCREENSHOT_TO = "LIFECYCLE_CONSOLE_SCREENSHOT"


def _touchpoint(customer: str, kind: str, day: int, **fields: Any) -> Touchpoint:
    attributes = {"purchase": {"amount": "42.00", "currency": "EUR"}, "survey": {"score": 9}}
    return Touchpoint(
        event_id=f"{customer}-{kind}-{day}",
        customer_id=customer,
        kind=Kind(kind),
        channel=Channel.PHONE if kind == "inquiry" else Channel.WEB,
        occurred_at=START + timedelta(days=day),
        producer="console-test",
        attributes=attributes.get(kind, {}),
        **fields,
    )


DEAD_LETTERS = [
    dead_letter(
        "dl-1",
        b'{"event_id": "dl-1", "customer_id": "dl-1", "kind": "teleportation"}',
        "unknown_kind",
        "kind: 'teleportation' is not a touchpoint kind",
        partition=0,
        offset=7,
    ),
    dead_letter(
        "dl-2",
        b"not json",
        "invalid_json",
        "not valid JSON: expected value at line 1 column 1",
        partition=1,
        offset=3,
    ),
]


@pytest.fixture(scope="module")
def topics(kafka_broker: EmbeddedBroker) -> Topics:
    """Topics of the console's tests on the session's broker, two dead letters on them."""
    return topics_with_dead_letters(kafka_broker, DEAD_LETTERS, partitions=2)


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, kafka_broker: EmbeddedBroker, topics: Topics
) -> Iterator[str]:
    """`lifecycle serve` over a small sealed store: Ada (an id with '/', a space, '?',
    '#' and 'ä') with personal data and a manager, Bob, and Carol, who was forgotten;
    and the dead letters of ``topics``."""
    directory = tmp_path_factory.mktemp("console")
    settings = Settings(
        database_url=f"sqlite:///{directory / 'lifecycle.db'}", audit_hmac_key=AUDIT_KEY
    )
    app = Components(settings).application()
    app.record_batch(
        [
            _touchpoint(CUSTOMER, "inquiry", 0, personal={"name": "Ada Lovelace"}),
            _touchpoint("bob", "purchase", 2),
            _touchpoint("carol", "inquiry", 3, personal={"name": "Carol Forgotten"}),
            _touchpoint(CUSTOMER, "purchase", 10),
            _touchpoint(CUSTOMER, "purchase", 40),
            _touchpoint(CUSTOMER, "survey", 45),
        ]
    )
    app.assign_account_manager(CUSTOMER, "ana", actor="lead", reason="key account", at=START)
    app.forget("carol", reason="erasure request", actor="dpo", at=START)
    ledger = Components(settings).ledger()
    key = Components(settings).audit_key()
    assert key is not None
    seal(app, ledger, key)
    ledger.close()
    app.close()
    server, base = _start_serving(
        settings.database_url,
        "--workers",
        "1",
        env={
            "LIFECYCLE_API_KEYS": f"{AUDITOR_KEY}:auditor,{READER_KEY}:reader,{ADMIN_KEY}:admin",
            "LIFECYCLE_AUDIT_HMAC_KEY": AUDIT_KEY,
            "LIFECYCLE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
            "LIFECYCLE_KAFKA_TOUCHPOINTS_TOPIC": topics.touchpoints,
            "LIFECYCLE_KAFKA_DEAD_LETTER_TOPIC": topics.dead_letters,
        },
    )
    try:
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    running = Browser(tmp_path / "profile")
    yield running
    running.close()


@pytest.fixture
def screens(tmp_path: Path) -> Path:
    directory = tmp_path / "screens"
    directory.mkdir()
    return directory


def _signed_in(browser: Browser, base: str, key: str) -> Tab:
    """A new tab at the console, the key typed into the form the console asks with."""
    tab = browser.new_tab()
    tab.go(f"{base}/console")
    tab.wait_for("!document.getElementById('key-form').hidden")
    assert tab.focused() == "api-key"
    tab.type(key)
    tab.press("Enter")
    tab.wait_for_page(lambda href: href == f"{base}/console")
    return tab


def _customer_address(base: str, customer: str) -> str:
    return f"{base}/console/customers/{quote(customer, safe='')}"


def test_an_auditor_finds_a_customer_reads_the_timeline_and_the_stage_at_a_date(
    console: str, browser: Browser, screens: Path
) -> None:
    tab = _signed_in(browser, console, AUDITOR_KEY)
    signed_in = tab.text("#who")
    tab.screenshot(screens / "1-home.png")

    # Search by keyboard: from the page's heading, Tab reaches the search box.
    tab.press("Tab")
    assert tab.focused() == "q"
    tab.type("team/")
    tab.press("Enter")
    tab.wait_for_page(lambda href: "/console/customers?q=team%2F" in href)
    found = tab.count("#found a.customer")
    tab.screenshot(screens / "2-search.png")

    # Tab past the search box and its button to the first customer; Enter opens it.
    for _ in range(3):
        tab.press("Tab")
    assert tab.focused() == f"a:{CUSTOMER}"
    tab.press("Enter")
    opened = tab.wait_for_page(lambda href: href == _customer_address(console, CUSTOMER))
    heading = tab.text("#page h1")
    timeline = tab.evaluate(
        "[...document.querySelectorAll('#timeline tbody tr')].map(row => ({"
        "type: row.className, hash: row.querySelector('code.hash').textContent, "
        "sealed: row.querySelector('.sealed').textContent.trim(), "
        "verified: row.querySelector('.verified').textContent.trim(), "
        "personal: row.querySelector('.personal').textContent.trim()}))"
    )
    seal_note = tab.text("#seal")
    tab.screenshot(screens / "3-customer.png")
    if os.environ.get(SCREENSHOT_TO):
        shutil.copyfile(screens / "3-customer.png", os.environ[SCREENSHOT_TO])

    # The stage at a chosen date: the date picked, the form sent from the keyboard.
    tab.evaluate("document.getElementById('at').focus()")
    tab.evaluate("document.getElementById('at').value = '2024-01-20'")
    tab.press("Enter")
    tab.wait_for_page(lambda href: href.endswith("?at=2024-01-20"))
    stage_then = tab.evaluate("document.getElementById('stage-at').dataset.stage")
    stage_at_text = tab.text("#stage-at")
    tab.screenshot(screens / "4-stage-at-a-date.png")

    assert signed_in == "Signed in as auditor"
    assert found == 1
    assert opened == _customer_address(console, CUSTOMER)
    assert CUSTOMER in heading
    assert [row["type"] for row in timeline] == [
        "event RelationshipStarted",
        "event TouchpointRecorded",
        "event TouchpointRecorded",
        "event StageChanged",
        "event TouchpointRecorded",
        "event StageChanged",
        "event TouchpointRecorded",
        "event AccountManagerAssigned",
    ]
    assert all(re.fullmatch("[0-9a-f]{64}", row["hash"]) for row in timeline)
    assert {(row["sealed"], row["verified"]) for row in timeline} == {("✓ sealed", "✓ verified")}
    assert timeline[1]["personal"] == "name: Ada Lovelace"
    assert "sealed through position" in seal_note
    assert stage_then == "awareness"
    assert "since 2024-01-11 09:00:00 UTC" in stage_at_text
    assert not [href for href in tab.visited if AUDITOR_KEY in href]


def test_a_forgotten_customer_s_personal_data_shows_as_erased(
    console: str, browser: Browser, screens: Path
) -> None:
    tab = _signed_in(browser, console, AUDITOR_KEY)

    tab.go(_customer_address(console, "carol"))
    tab.wait_for_page(lambda href: href.endswith("/console/customers/carol"))
    personal = tab.evaluate(
        "[...document.querySelectorAll('#timeline td.personal')].map(c => c.textContent.trim())"
    )
    tab.screenshot(screens / "5-forgotten.png")

    assert '{"erased": true}' in personal
    assert "Carol Forgotten" not in tab.evaluate("document.body.textContent")


def test_a_manager_s_book_and_the_funnel_with_the_report_s_charts(
    console: str, browser: Browser, screens: Path
) -> None:
    tab = _signed_in(browser, console, AUDITOR_KEY)

    tab.go(f"{console}/console/managers?manager=ana")
    tab.wait_for_page(lambda href: "manager=ana" in href)
    book = tab.evaluate(
        "[...document.querySelectorAll('#book a.customer')].map(a => a.getAttribute('href'))"
    )
    tab.screenshot(screens / "6-book.png")
    tab.go(f"{console}/console/funnel")
    tab.wait_for_page(lambda href: href.endswith("/console/funnel"))
    charts = {
        name: tab.count(selector)
        for name, selector in {
            "bars": "rect.funnel-bar",
            "nodes": "rect.flow-node",
            "cohorts": "#cohorts rect.cohort-cell",
        }.items()
    }
    tab.screenshot(screens / "7-funnel.png")

    assert book == [f"/console/customers/{quote(CUSTOMER, safe='')}"]
    assert charts["bars"] == 5
    assert charts["nodes"] == 5
    assert charts["cohorts"] > 0


def test_a_reader_sees_the_stage_history_but_not_the_timeline_nor_personal_data(
    console: str, browser: Browser, screens: Path
) -> None:
    tab = _signed_in(browser, console, READER_KEY)

    tab.go(_customer_address(console, CUSTOMER))
    tab.wait_for_page(lambda href: href == _customer_address(console, CUSTOMER))
    page = tab.evaluate("document.getElementById('page').innerHTML")
    tab.screenshot(screens / "8-reader-customer.png")

    assert tab.count("#stage-history tbody tr") == 2
    assert tab.count("#timeline") == 0
    assert tab.count("#timeline-withheld") == 1
    assert "Ada Lovelace" not in page
    assert 'code class="hash"' not in page


def test_a_rejected_key_is_asked_for_again(console: str, browser: Browser) -> None:
    tab = browser.new_tab()
    tab.go(f"{console}/console")
    tab.wait_for("!document.getElementById('key-form').hidden")

    tab.type("not-a-key")
    tab.press("Enter")
    message = tab.wait_for("document.getElementById('key-message').textContent")

    assert "not accepted" in message
    assert tab.evaluate("sessionStorage.length") == 0


def test_an_auditor_reads_the_dead_letters_without_a_re_drive_button(
    console: str, browser: Browser, screens: Path
) -> None:
    tab = _signed_in(browser, console, AUDITOR_KEY)

    tab.go(f"{console}/console/dead-letters")
    tab.wait_for_page(lambda href: href.endswith("/console/dead-letters"))
    codes = tab.evaluate(
        "[...document.querySelectorAll('#dead-letters tbody tr strong')].map(s => s.textContent)"
    )
    tab.screenshot(screens / "9-dead-letters.png")

    assert codes == ["unknown_kind", "invalid_json"]
    assert tab.count("form.redrive") == 0


def test_an_admin_re_drives_a_dead_letter_to_the_touchpoint_topic(
    console: str, browser: Browser, screens: Path, kafka_broker: EmbeddedBroker, topics: Topics
) -> None:
    tab = _signed_in(browser, console, ADMIN_KEY)
    tab.go(f"{console}/console/dead-letters")
    tab.wait_for_page(lambda href: href.endswith("/console/dead-letters"))

    tab.evaluate("document.querySelector('form.redrive button').focus()")
    tab.press("Enter")
    notice = tab.wait_for("document.getElementById('notice')?.textContent")
    counts = tab.evaluate(
        "[...document.querySelectorAll('#dead-letters tbody tr')]"
        ".map(row => row.cells[5].textContent.trim())"
    )
    buttons = tab.evaluate(
        "[...document.querySelectorAll('form.redrive button')].map(b => b.textContent)"
    )
    tab.screenshot(screens / "10-re-driven.png")
    [sent] = read_topic(kafka_broker.bootstrap, topics.touchpoints, 1)

    assert notice == "Re-drove the dead letter at offset 0 to the touchpoint topic."
    assert counts == ["1", "0"]
    assert buttons == ["Re-drive again", "Re-drive"]
    assert (sent.key, sent.value) == (DEAD_LETTERS[0].key, DEAD_LETTERS[0].value)
    assert dict(sent.headers)["redrive_count"] == b"1"


def test_a_reader_does_not_see_the_dead_letters(
    console: str, browser: Browser, screens: Path
) -> None:
    tab = _signed_in(browser, console, READER_KEY)

    tab.go(f"{console}/console/dead-letters")
    tab.wait_for_page(lambda href: href.endswith("/console/dead-letters"))
    refused = tab.text("#refused")
    tab.screenshot(screens / "11-reader-dead-letters.png")

    assert refused == "the reader role may not use this route"
    assert tab.count("#dead-letters") == 0
