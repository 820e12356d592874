"""How events become bytes: eventsourcing's JSON wire format, written by orjson.

Values JSON has no type for travel as ``{"_type_": name, "_data_": value}``, exactly as
the library's ``JSONTranscoder`` writes them, so stored events read the same with
either transcoder; orjson only makes the ingest path faster.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    Transcoder,
    Transcoding,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)

_TYPED = b'"_type_"'


class SetAsList(Transcoding):
    """Snapshots hold sets (recorded event ids, purchase days)."""

    type = set
    name = "set"

    def encode(self, obj: set[Any]) -> list[Any]:
        return sorted(obj)

    def decode(self, data: list[Any]) -> set[Any]:
        return set(data)


class OrjsonTranscoder(Transcoder):
    def __init__(self) -> None:
        self.types: dict[type, Transcoding] = {}
        self.names: dict[str, Transcoding] = {}
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), SetAsList()):
            self.register(transcoding)

    def register(self, transcoding: Transcoding) -> None:
        self.types[transcoding.type] = transcoding
        self.names[transcoding.name] = transcoding

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=self._encode_obj, option=orjson.OPT_PASSTHROUGH_DATETIME)

    def decode(self, data: bytes) -> Any:
        value = orjson.loads(data)
        if _TYPED in data:
            return self._decode_value(value)
        return value

    def _encode_obj(self, obj: Any) -> dict[str, Any]:
        if type(obj) is datetime:  # most common by far: spare the lookup
            return {"_type_": "datetime_iso", "_data_": obj.isoformat()}
        transcoding = self.types.get(type(obj))
        if transcoding is None:
            msg = f"Object of type {type(obj)} is not serializable: register a transcoding"
            raise TranscodingNotRegisteredError(msg)
        return {"_type_": transcoding.name, "_data_": transcoding.encode(obj)}

    def _decode_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 2 and "_type_" in value and "_data_" in value:
                transcoding = self.names.get(value["_type_"])
                if transcoding is None:
                    msg = f"Data serialized as {value['_type_']!r} has no registered transcoding"
                    raise TranscodingNotRegisteredError(msg)
                return transcoding.decode(self._decode_value(value["_data_"]))
            return {key: self._decode_value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._decode_value(item) for item in value]
        return value


__all__ = ["OrjsonTranscoder", "SetAsList"]
