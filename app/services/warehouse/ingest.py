"""Parsing a batch of warehouse rows (internal `warehouse/rows`, API.md §6) cheaply.

The ordinary batch — canonical uuids, ISO timestamps with a zone, plain strings, JSON-object
properties — is checked and turned into COPY records in one pass over the decoded JSON, with
the same rules as the row models (`EventRow`, `PersonRow`): required and unknown fields,
lengths, NUL characters, NaN/Infinity. A batch that is anything else (a bad row, or a shape this
pass does not vouch for) goes through the pydantic models, which either accept it or name the
first offending field (`rows.<i>.<field>`), so the answers stay those of the models.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson
from asyncpg.pgproto.pgproto import UUID
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from app.core.errors import ValidationFailed
from app.schemas.membership import EventRow, PersonRow

Record = tuple[Any, ...]
EVENT_COLUMNS = ("uuid", "event", "distinct_id", "properties", "timestamp")
PERSON_COLUMNS = ("id", "distinct_ids", "properties", "created_at")
MAX_TEXT = 1000
MAX_DISTINCT_IDS = 1000

_EVENT_KEYS = frozenset(EVENT_COLUMNS)
_EVENT_REQUIRED = _EVENT_KEYS - {"properties"}
_PERSON_KEYS = frozenset(PERSON_COLUMNS)
_PERSON_REQUIRED = _PERSON_KEYS - {"properties"}
_EVENT_ROWS = TypeAdapter(list[EventRow])
_PERSON_ROWS = TypeAdapter(list[PersonRow])
_dumps = json.JSONEncoder(allow_nan=False).encode
# orjson writes what JSON cannot hold (NaN, Infinity) as null and serializes a few Python types
# JSON has no word for; anything but plain JSON values is left to `_dumps`, which refuses them.
_ORJSON_PLAIN = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


class _Slow(Exception):
    """The batch needs the models' verdict."""


def parse_batch(table: str, raw: list[Any]) -> list[Record]:
    """COPY records for `table` (`events` or `persons`); 400 naming the first bad field."""
    try:
        return _fast_events(raw) if table == "events" else _fast_persons(raw)
    except _Slow:
        return _through_models(table, raw)


def _text(value: Any) -> str:
    if type(value) is not str or not 0 < len(value) <= MAX_TEXT or "\x00" in value:
        raise _Slow
    return value


def _uuid(value: Any) -> UUID:
    # The hyphenated form only (the models take others too, and decide them): asyncpg's UUID, a
    # `uuid.UUID` it writes to COPY without converting, skips hyphens wherever they are.
    if (
        type(value) is not str
        or len(value) != 36
        or not value[8] == value[13] == value[18] == value[23] == "-"
    ):
        raise _Slow
    try:
        return UUID(value)
    except ValueError:
        raise _Slow from None


def _timestamp(value: Any) -> datetime:
    if type(value) is not str or not 20 <= len(value) <= 32 or value[10] not in "T ":
        raise _Slow
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Slow from None
    if parsed.tzinfo is None:
        raise _Slow
    return parsed


def encode_json(value: Any) -> str:
    """JSON text for a jsonb column: orjson's for plain JSON values, else `_dumps`'s (which
    raises ValueError for NaN or Infinity, TypeError for what is not JSON)."""
    try:
        encoded = orjson.dumps(value, option=_ORJSON_PLAIN)
    except TypeError:  # orjson.JSONEncodeError: e.g. an integer beyond 64 bits
        return _dumps(value)
    if b"null" in encoded:  # perhaps a NaN or an Infinity
        return _dumps(value)
    return encoded.decode()


def _properties(row: dict[str, Any]) -> str:
    value = row.get("properties", {})
    if type(value) is not dict:
        raise _Slow
    try:
        encoded = encode_json(value)
    except (ValueError, TypeError):
        raise _Slow from None
    if "\\u0000" in encoded:
        raise _Slow
    return encoded


def _fast_events(raw: list[Any]) -> list[Record]:
    records = []
    for row in raw:
        if type(row) is not dict or not _EVENT_REQUIRED <= row.keys() <= _EVENT_KEYS:
            raise _Slow
        records.append(
            (
                _uuid(row["uuid"]),
                _text(row["event"]),
                _text(row["distinct_id"]),
                _properties(row),
                _timestamp(row["timestamp"]),
            )
        )
    return records


def _fast_persons(raw: list[Any]) -> list[Record]:
    records = []
    for row in raw:
        if type(row) is not dict or not _PERSON_REQUIRED <= row.keys() <= _PERSON_KEYS:
            raise _Slow
        ids = row["distinct_ids"]
        if type(ids) is not list or len(ids) > MAX_DISTINCT_IDS:
            raise _Slow
        for one in ids:
            if type(one) is not str or "\x00" in one:
                raise _Slow
        records.append((_uuid(row["id"]), ids, _properties(row), _timestamp(row["created_at"])))
    return records


def _through_models(table: str, raw: list[Any]) -> list[Record]:
    adapter: TypeAdapter[Any] = _EVENT_ROWS if table == "events" else _PERSON_ROWS
    try:
        rows: list[EventRow] | list[PersonRow] = adapter.validate_python(raw)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        attr = ".".join(["rows", *(str(p) for p in first["loc"])])
        raise ValidationFailed(f"{attr}: {first['msg']}"[:500], attr=attr) from exc
    records: list[Record] = []
    for i, row in enumerate(rows):
        _reject_unstorable(row, i)
        if isinstance(row, EventRow):
            records.append(
                (row.uuid, row.event, row.distinct_id, encode_json(row.properties), row.timestamp)
            )
        elif isinstance(row, PersonRow):
            records.append((row.id, row.distinct_ids, encode_json(row.properties), row.created_at))
    return records


def _reject_unstorable(row: BaseModel, index: int) -> None:
    """PostgreSQL text and jsonb cannot hold NUL; JSON cannot hold NaN/Infinity."""
    for name, value in row:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            raise ValidationFailed(
                f"rows.{index}.{name}: must not contain NUL characters", attr=f"rows.{index}.{name}"
            )
    properties = getattr(row, "properties", {})
    attr = f"rows.{index}.properties"
    try:
        encoded = encode_json(properties)
    except ValueError as exc:
        raise ValidationFailed(
            f"{attr}: must be valid JSON (no NaN or Infinity)", attr=attr
        ) from exc
    if "\\u0000" in encoded:
        raise ValidationFailed(f"{attr}: must not contain NUL characters", attr=attr)
