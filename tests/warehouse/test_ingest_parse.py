"""Parsing a `warehouse/rows` batch: the one-pass check agrees with the row models."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from app.core.errors import ValidationFailed
from app.services.warehouse.ingest import _through_models, parse_batch


def event(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "event": "$pageview",
        "distinct_id": "u1",
        "properties": {"plan": "pro", "n": 1.5, "tags": ["a", "b"], "ü": "ß"},
        "timestamp": "2026-11-26T10:00:00.123456+01:00",
    }
    row.update(changes)
    return row


def person(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "distinct_ids": ["u1", "u2"],
        "properties": {},
        "created_at": "2026-11-26T10:00:00Z",
    }
    row.update(changes)
    return row


@pytest.mark.parametrize(
    ("table", "rows"),
    [
        (
            "events",
            [
                event(),
                event(properties={}),
                {k: v for k, v in event().items() if k != "properties"},
            ],
        ),
        ("events", [event(timestamp="2026-11-26 10:00:00Z")]),
        ("persons", [person(), person(distinct_ids=[])]),
        # Shapes the pass leaves to the models, which take them.
        ("events", [event(), event(timestamp="2026-11-26T10:00:00,5Z")]),
        ("events", [event(), event(timestamp="2026-11-26T10:00:00.123456789+01:00")]),
        ("events", [event(uuid=str(uuid.uuid4()).replace("-", ""))]),
        ("events", [event(uuid="{" + str(uuid.uuid4()).upper() + "}")]),
        ("persons", [person(id=str(uuid.uuid4()).upper())]),
        # Properties orjson cannot write as the standard library would (null may be a NaN;
        # integers beyond 64 bits).
        ("events", [event(properties={"a": None, "b": [None]}), event()]),
        ("events", [event(properties={"big": 2**70, "neg": -(2**64)})]),
        ("persons", [person(properties={"x": None, "y": 1e-7})]),
    ],
)
def test_the_fast_pass_gives_the_models_records(table: str, rows: list[dict[str, Any]]) -> None:
    assert parse_batch(table, rows) == _through_models(table, rows)


def test_records_hold_typed_values_and_json_text() -> None:
    (rec,) = parse_batch("events", [event(uuid="00000000-0000-4000-8000-000000000001")])
    assert rec[0] == uuid.UUID("00000000-0000-4000-8000-000000000001")
    assert json.loads(rec[3])["ü"] == "ß"
    assert rec[4] == datetime(2026, 11, 26, 9, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("table", "rows", "attr"),
    [
        ("events", [event(), event(timestamp="2026-11-26T10:00:00")], "rows.1.timestamp"),
        ("events", [event(uuid="nope")], "rows.0.uuid"),
        ("events", [event(event="")], "rows.0.event"),
        ("events", [event(extra=1)], "rows.0.extra"),
        ("events", [event(distinct_id="a\x00b")], "rows.0.distinct_id"),
        ("events", [event(properties={"x": "a\x00"})], "rows.0.properties"),
        ("events", [event(properties={"x": float("nan")})], "rows.0.properties"),
        ("events", [event(properties=[1])], "rows.0.properties"),
        ("events", ["not an object"], "rows.0"),
        ("persons", [person(distinct_ids="a")], "rows.0.distinct_ids"),
        ("persons", [person(distinct_ids=["a\x00"])], "rows.0.distinct_ids"),
        ("persons", [person(created_at="yesterday")], "rows.0.created_at"),
        # What `datetime.fromisoformat` or asyncpg's UUID take and the models refuse.
        ("events", [event(), event(timestamp="2026-11-26T10:00:00+01")], "rows.1.timestamp"),
        ("events", [event(timestamp="2026-11-26T10:00:00+00:60")], "rows.0.timestamp"),
        ("events", [event(timestamp="2026-11-26 100000Z")], "rows.0.timestamp"),
        ("persons", [person(created_at="2026-11-26T10:00+01:00:30")], "rows.0.created_at"),
        ("events", [event(uuid="0000000-00000-0000-0000-000000000000")], "rows.0.uuid"),
        ("events", [event(), event(uuid=f"{uuid.uuid4()}\n{uuid.uuid4()}")], "rows.1.uuid"),
        (
            "events",
            [event(timestamp="2026-11-26T10:00:00Z\n2026-11-26T10:00:00Z")],
            "rows.0.timestamp",
        ),
        ("events", [event(event="x" * 1001)], "rows.0.event"),
        ("events", [event(), event(properties={"x": float("inf")})], "rows.1.properties"),
        ("persons", [person(distinct_ids=["a", 1])], "rows.0.distinct_ids.1"),
        ("persons", [person(distinct_ids=["a"] * 1001)], "rows.0.distinct_ids"),
    ],
)
def test_a_bad_row_is_named(table: str, rows: list[Any], attr: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_batch(table, rows)
    assert caught.value.attr == attr
