"""Capture what the service's loggers write, through the real formatters and filters."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.core.logging import JsonFormatter, KeyValueFormatter, RedactKeys
from app.core.request_id import RequestIdFilter
from app.pipeline.observability import flush_pending


class Captured:
    def __init__(self) -> None:
        self.text = io.StringIO()
        self.json = io.StringIO()

    def text_lines(self) -> list[str]:
        return [line for line in self.text.getvalue().splitlines() if line]

    def json_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.json.getvalue().splitlines():
            if line:
                record = json.loads(line)  # every line is one JSON object
                assert isinstance(record, dict), line
                records.append(record)
        return records

    def access(self) -> list[dict[str, Any]]:
        return [r for r in self.json_records() if r["logger"] == "app.access"]


@contextmanager
def captured_logs(level: int = logging.INFO) -> Iterator[Captured]:
    """Both formats at once, as `logging_config` sets them up, on the root logger."""
    out = Captured()
    handlers = []
    for stream, formatter in (
        (
            out.text,
            KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"),
        ),
        (out.json, JsonFormatter()),
    ):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
        handler.addFilter(RedactKeys())
        handlers.append(handler)
    flush_pending()  # earlier requests' lines are not this block's
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(level)
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield out
    finally:
        flush_pending()  # access lines are written in batches
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(old_level)
