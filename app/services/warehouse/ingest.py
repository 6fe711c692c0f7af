"""Parsing a batch of warehouse rows (internal `warehouse/rows`, API.md §6) cheaply.

The ordinary batch — canonical uuids, ISO timestamps with a zone, plain strings, JSON-object
properties — is checked and turned into COPY records in one pass over the decoded JSON, with
the same rules as the row models (`EventRow`, `PersonRow`): required and unknown fields,
lengths, NUL characters, NaN/Infinity. The pass works a column at a time (every uuid of the
batch, then every timestamp, ...), so the checks and conversions run inside C loops (`map`,
`zip`, one regular expression over a column joined by newlines, `join` + `in`) instead of
Python bytecode per value. A batch that is anything else (a bad row, or a shape this pass does
not vouch for) goes through the pydantic models, which either accept it or name the first
offending field (`rows.<i>.<field>`), so the answers stay those of the models.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import partial
from itertools import chain
from operator import itemgetter, methodcaller
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
_EVENT_SHAPES = {_EVENT_KEYS, _EVENT_KEYS - {"properties"}}
_PERSON_KEYS = frozenset(PERSON_COLUMNS)
_PERSON_SHAPES = {_PERSON_KEYS, _PERSON_KEYS - {"properties"}}
_EVENT_FIELDS = itemgetter("uuid", "event", "distinct_id", "timestamp")
_PERSON_FIELDS = itemgetter("id", "distinct_ids", "created_at")
_PROPERTIES = methodcaller("get", "properties", {})  # the default is only read, never changed
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
_orjson_plain = partial(orjson.dumps, option=_ORJSON_PLAIN)
# The shapes this pass vouches for, as whole columns joined by newlines. A uuid: the hyphenated
# form (asyncpg's UUID, a `uuid.UUID` that COPY writes without converting, skips hyphens
# wherever they are). A timestamp: `datetime.fromisoformat` also takes forms the models refuse
# (`+01`, `,5`, a compact time, offset minutes of 60, ...). Anything else goes to the models.
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_TIMESTAMP = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_UUID_COLUMN = re.compile(rf"(?:{_UUID}\n)*{_UUID}")
_TIMESTAMP_COLUMN = re.compile(rf"(?:{_TIMESTAMP}\n)*{_TIMESTAMP}")


class _Slow(Exception):
    """The batch needs the models' verdict."""


def parse_batch(table: str, raw: list[Any]) -> list[Record]:
    """COPY records for `table` (`events` or `persons`); 400 naming the first bad field."""
    if not raw:
        return []
    try:
        return _fast_events(raw) if table == "events" else _fast_persons(raw)
    except _Slow:
        return _through_models(table, raw)


def encode_json(value: Any) -> str:
    """JSON text for a jsonb column: orjson's for plain JSON values, else `_dumps`'s (which
    raises ValueError for NaN or Infinity, TypeError for what is not JSON)."""
    try:
        encoded = _orjson_plain(value)
    except TypeError:  # orjson.JSONEncodeError: e.g. an integer beyond 64 bits
        return _dumps(value)
    if b"null" in encoded:  # perhaps a NaN or an Infinity
        return _dumps(value)
    return encoded.decode()


def _all(values: Any, kind: type) -> None:
    if set(map(type, values)) != {kind}:
        raise _Slow


def _texts(values: tuple[Any, ...]) -> None:
    _all(values, str)
    lengths = list(map(len, values))
    if min(lengths) < 1 or max(lengths) > MAX_TEXT or "\x00" in "".join(values):
        raise _Slow


def _shaped(column: re.Pattern[str], values: tuple[Any, ...]) -> None:
    """Every value is a string of the column's shape (a value holding a newline is not)."""
    _all(values, str)
    joined = "\n".join(values)
    if joined.count("\n") != len(values) - 1 or column.fullmatch(joined) is None:
        raise _Slow


def _uuids(values: tuple[Any, ...]) -> list[UUID]:
    _shaped(_UUID_COLUMN, values)
    return list(map(UUID, values))


def _timestamps(values: tuple[Any, ...]) -> list[datetime]:
    _shaped(_TIMESTAMP_COLUMN, values)
    try:
        return list(map(datetime.fromisoformat, values))
    except ValueError:  # e.g. February 30th
        raise _Slow from None


def _properties(values: list[Any]) -> list[str]:
    _all(values, dict)
    try:
        encoded = list(map(_orjson_plain, values))
    except TypeError:  # e.g. an integer beyond 64 bits
        encoded = []
    whole = b"\n".join(encoded)
    if encoded and b"null" not in whole and b"\\u0000" not in whole:
        return list(map(bytes.decode, encoded))
    # A null may be a NaN or an Infinity (orjson writes them so); let `encode_json` decide.
    try:
        texts = list(map(encode_json, values))
    except (ValueError, TypeError):
        raise _Slow from None
    if "\\u0000" in "".join(texts):  # a NUL, which jsonb cannot hold
        raise _Slow
    return texts


def _fast_events(raw: list[Any]) -> list[Record]:
    _all(raw, dict)
    if not set(map(frozenset, raw)) <= _EVENT_SHAPES:
        raise _Slow
    keys, events, distinct_ids, timestamps = zip(*map(_EVENT_FIELDS, raw), strict=True)
    _texts(events)
    _texts(distinct_ids)
    return list(
        zip(
            _uuids(keys),
            events,
            distinct_ids,
            _properties(list(map(_PROPERTIES, raw))),
            _timestamps(timestamps),
            strict=True,
        )
    )


def _fast_persons(raw: list[Any]) -> list[Record]:
    _all(raw, dict)
    if not set(map(frozenset, raw)) <= _PERSON_SHAPES:
        raise _Slow
    keys, distinct_ids, created = zip(*map(_PERSON_FIELDS, raw), strict=True)
    _all(distinct_ids, list)
    if max(map(len, distinct_ids)) > MAX_DISTINCT_IDS:
        raise _Slow
    every_id = list(chain.from_iterable(distinct_ids))
    if every_id and (set(map(type, every_id)) != {str} or "\x00" in "".join(every_id)):
        raise _Slow
    return list(
        zip(
            _uuids(keys),
            distinct_ids,
            _properties(list(map(_PROPERTIES, raw))),
            _timestamps(created),
            strict=True,
        )
    )


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
