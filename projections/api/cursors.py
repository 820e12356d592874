"""Page cursors: the sort key of a page's last item, opaque to the client (base64 of a
JSON list of strings); one made up or of another list is a bad parameter."""

from __future__ import annotations

import base64
import binascii

import orjson

from projections.api.errors import ApiError


def encode_cursor(values: list[str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str | None, size: int) -> list[str] | None:
    """The ``size`` values of ``cursor`` (None for the first page)."""
    if cursor is None:
        return None
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != size
        or not all(isinstance(v, str) and "\x00" not in v for v in values)
    ):
        raise not_a_cursor()
    return values


def not_a_cursor() -> ApiError:
    return ApiError(422, "invalid_parameter", "cursor: not a cursor of this list")
