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
import uuid
from datetime import datetime
from typing import Any

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


def _uuid(value: Any) -> uuid.UUID:
    if type(value) is not str or len(value) != 36:
        raise _Slow
    try:
        return uuid.UUID(value)
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


def _properties(row: dict[str, Any]) -> str:
    value = row.get("properties", {})
    if type(value) is not dict:
        raise _Slow
    try:
        encoded = _dumps(value)
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
                (row.uuid, row.event, row.distinct_id, _dumps(row.properties), row.timestamp)
            )
        elif isinstance(row, PersonRow):
            records.append((row.id, row.distinct_ids, _dumps(row.properties), row.created_at))
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
        encoded = _dumps(properties)
    except ValueError as exc:
        raise ValidationFailed(
            f"{attr}: must be valid JSON (no NaN or Infinity)", attr=attr
        ) from exc
    if "\\u0000" in encoded:
        raise ValidationFailed(f"{attr}: must not contain NUL characters", attr=attr)
