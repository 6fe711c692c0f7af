"""One JSON object per log line, whatever a line holds (app/core/logging.py, API.md §10)."""

from __future__ import annotations

import json
import logging
import uuid

from app.core.logging import JsonFormatter, quick_record


def _line(fields: dict[str, object], message: str = "GET /x 200 1.0ms") -> dict[str, object]:
    record = quick_record("app.access", logging.INFO, message, fields, 1_700_000_000.25)
    decoded: dict[str, object] = json.loads(JsonFormatter().format(record))
    return decoded


def test_access_line_fields_and_time():
    key = uuid.uuid4()
    line = _line({"status": 200, "key_id": key, "team_id": 7})
    assert line["time"] == "2023-11-14T22:13:20.250+00:00"
    assert line["level"] == "INFO" and line["logger"] == "app.access"
    assert line["message"] == "GET /x 200 1.0ms"
    assert line["status"] == 200 and line["team_id"] == 7
    assert line["key_id"] == str(key)  # not JSON by itself: written as its text


def test_values_the_fast_encoder_refuses_are_still_written():
    # orjson refuses an integer beyond 64 bits and a lone surrogate; the line falls back to
    # the standard library instead of being lost.
    line = _line({"big": 2**70, "odd": "a\ud800b"})
    assert line["big"] == 2**70
    assert line["odd"] == "a\ud800b"


def test_keys_are_redacted_in_json_lines():
    secret = "phx_" + "A" * 44
    line = _line({"note": f"token {secret}"}, message=f"saw {secret}")
    text = json.dumps(line)
    assert secret not in text and "phx_[redacted]" in text
