"""Path parameters that may hold any character, '/' included: customer ids.

A customer id is one path segment, percent-encoded as RFC 3986 asks (``a/b`` is sent as
``a%2Fb``). The server decodes the whole path before routing, which would make
``/v1/customers/a%2Fb/history`` look like four segments; so ``KeepEncodedSlashes`` gives
the router the path with '/' and '%' still encoded inside each segment (taken from the
raw path the server received), and the ``segment`` convertor decodes them in the
parameter. The routes stay unambiguous: ``/v1/customers/{id}/history`` is the history of
``id`` even when the id ends with ``/history``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from starlette.convertors import Convertor, register_url_convertor

SEGMENT = "segment"
"""The convertor's name: ``/v1/customers/{customer_id:segment}``."""

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

_ESCAPES = re.compile("%2F|%25")


class SegmentConvertor(Convertor[str]):
    """One path segment, '/' and '%' percent-encoded in it (see ``KeepEncodedSlashes``)."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return _ESCAPES.sub(lambda match: "/" if match.group() == "%2F" else "%", value)

    def to_string(self, value: str) -> str:
        return _encode(value)


def register_segment_convertor() -> None:
    """Make ``{name:segment}`` known to the router (idempotent)."""
    register_url_convertor(SEGMENT, SegmentConvertor())


class KeepEncodedSlashes:
    """Pure ASGI middleware: when a segment of the raw path decodes to something holding
    '/' (or '%'), route on the path with those characters still encoded in it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = _segmented_path(scope)
            if path is not None:
                scope = {**scope, "path": path}
        await self.app(scope, receive, send)


def _segmented_path(scope: Scope) -> str | None:
    raw = scope.get("raw_path")
    if not raw or b"%" not in raw:
        return None
    try:
        segments = [unquote(part) for part in raw.decode("ascii").split("/")]
    except UnicodeDecodeError:
        return None
    if "/".join(segments) != scope["path"]:
        return None  # not the raw form of this path: leave routing as it is
    if not any("/" in segment or "%" in segment for segment in segments):
        return None
    return "/".join(_encode(segment) for segment in segments)


def _encode(segment: str) -> str:
    return segment.replace("%", "%25").replace("/", "%2F")
