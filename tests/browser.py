"""Headless Chromium (Debian's, on the machine) driven through the DevTools protocol over
a pipe (``--remote-debugging-pipe``: messages are JSON, each ended by a NUL byte, on file
descriptors 3 and 4 of the browser): no driver, no websocket client, nothing downloaded.

``Browser`` starts the browser with a fresh profile; each ``Tab`` is a page target with
its own session storage, driven by the keyboard (``press``, ``type``) as a person would,
read through ``evaluate``, and photographed (``screenshot``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = "chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--force-color-profile=srgb",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
_TRAMPOLINE = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.execvp(sys.argv[3], sys.argv[3:])"
)
LAPTOP = {"width": 1366, "height": 900, "deviceScaleFactor": 1, "mobile": False}
KEYS = {
    "Enter": {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"},
    "Tab": {"key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9},
}


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, profile: Path) -> None:
        reading, self._writer = os.pipe()
        self._reader, writing = os.pipe()
        # The browser's ends, numbered above 3 and 4, where a small trampoline moves them
        # before it becomes the browser (so neither can land on the other's number first).
        ends = [fcntl.fcntl(end, fcntl.F_DUPFD_CLOEXEC, 10) for end in (reading, writing)]
        for end in (reading, writing):
            os.close(end)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _TRAMPOLINE,
                *map(str, ends),
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=ends,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for end in ends:
            os.close(end)
        self._ids = itertools.count(1)
        self._buffer = b""

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events meanwhile are passed over)."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._next_message()
            if answer.get("id") == number:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result

    def _next_message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._reader, 1 << 16)
            if not chunk:
                raise BrowserError("the browser went away")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        loaded: dict[str, Any] = json.loads(message)
        return loaded

    def new_tab(self) -> Tab:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        tab = Tab(self, session)
        tab.call("Page.enable")
        tab.call("Emulation.setDeviceMetricsOverride", **LAPTOP)
        return tab

    def close(self) -> None:
        with contextlib.suppress(BrowserError, OSError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._writer)
        os.close(self._reader)


class Tab:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        self.visited: list[str] = []
        """Every address this tab was at, as ``location.href`` said."""

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.call(method, self.session, **params)

    def go(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of ``expression`` once it is truthy (across page loads)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except BrowserError:
                value = None  # the page is between documents
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            time.sleep(0.05)

    def wait_for_page(self, at: Callable[[str], bool], timeout: float = 30.0) -> str:
        """Wait until the tab is at an address ``at`` accepts and the console has shown
        its content; returns the address."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                href = self.evaluate("location.href")
                shown = self.evaluate(
                    "document.readyState === 'complete' && "
                    "document.getElementById('page')?.getAttribute('aria-busy') === 'false'"
                )
            except BrowserError:
                href, shown = "", False
            if href and at(href) and shown:
                if not self.visited or self.visited[-1] != href:
                    self.visited.append(href)
                return str(href)
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out at {href!r}")
            time.sleep(0.05)

    def press(self, name: str) -> None:
        key = KEYS[name]
        down = "keyDown" if "text" in key else "rawKeyDown"
        self.call("Input.dispatchKeyEvent", type=down, **key)
        self.call("Input.dispatchKeyEvent", type="keyUp", **key)

    def type(self, text: str) -> None:
        self.call("Input.insertText", text=text)

    def focused(self) -> str:
        """What has the keyboard's focus: its id, else its tag and text."""
        value = self.evaluate(
            "(e => e.id || e.tagName.toLowerCase() + ':' + e.textContent.trim())"
            "(document.activeElement)"
        )
        return str(value)

    def text(self, selector: str) -> str:
        value = self.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent ?? ''")
        return str(value)

    def count(self, selector: str) -> int:
        return int(self.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length"))

    def screenshot(self, path: Path) -> None:
        """The whole page, as a PNG."""
        size = self.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        shot = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
        )
        path.write_bytes(base64.b64decode(shot["data"]))
