"""Logging: every record on one line, as `key=value` text or as one JSON object (API.md §10).

`LOG_FORMAT=json|text` (default json when `ENVIRONMENT=production`, else text) picks the
formatter; `logging_config` returns the `dictConfig` for it, which `warehouse serve` hands to
uvicorn (so uvicorn's own loggers, in every worker process, write through it too) and the
other processes apply with `configure_logging`.

- Fields passed in `extra` are appended (text) or become keys (JSON); the request id of the
  request being served is added to every record (`RequestIdFilter`).
- Secrets never reach the output: anything shaped like a personal API key (`phx_...`) or a
  webhook secret (`whsec_...`), and the password of any `scheme://user:password@host` DSN, is
  masked in the formatted line, exception text included (`redact`). Keys may arrive in a
  query string (`?personal_api_key=phx_...`), which is why this runs on every line.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import time
from typing import Any, Literal

import orjson

from app.core.request_id import RequestIdFilter

# uvicorn adds `color_message` (the message again, with terminal colours) to its records.
_FIELDS = "_fields"
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "color_message",
    _FIELDS,
}
_KEY_SHAPE = re.compile(r"(phx|whsec)_[A-Za-z0-9+/=]+")
_DSN_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s\"']*:)[^@\s\"']+@")


_BLANK = {**vars(logging.makeLogRecord({})), "exc_info": None, "args": None}


def quick_record(
    name: str, level: int, msg: str, fields: dict[str, Any], created: float
) -> logging.LogRecord:
    """A LogRecord as `Logger.makeRecord` makes it (no caller frame, no thread), for the line
    written on every request: a few dict updates instead of LogRecord.__init__'s work."""
    record = logging.LogRecord.__new__(logging.LogRecord)
    now = created
    attrs = record.__dict__
    attrs.update(_BLANK)
    attrs.update(fields)
    attrs[_FIELDS] = fields
    attrs["name"] = name
    attrs["msg"] = msg
    attrs["levelno"] = level
    attrs["levelname"] = logging.getLevelName(level)
    attrs["created"] = now
    attrs["msecs"] = (now - int(now)) * 1000
    attrs["relativeCreated"] = (now - logging._startTime) * 1000  # type: ignore[attr-defined]
    attrs["process"] = current_pid()
    return record


_pid = os.getpid()


def current_pid() -> int:
    """os.getpid(), remembered: a system call per log line (or metric) costs on some VMs."""
    return _pid


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def emit_batch(logger: logging.Logger, records: list[logging.LogRecord]) -> None:
    """`logger.handle` for many records at once, as `Logger.callHandlers` would, except that a
    plain StreamHandler gets them as one write (one system call, not one per line)."""
    if logger.disabled:
        return
    records = [r for r in records if logger.filter(r)]
    current: logging.Logger | None = logger
    while current is not None and records:
        for handler in current.handlers:
            batch = [r for r in records if r.levelno >= handler.level]
            if type(handler) is not logging.StreamHandler:
                for record in batch:
                    handler.handle(record)
                continue
            try:
                lines = [handler.format(r) for r in batch if handler.filter(r)]
                if lines:
                    with handler.lock:  # type: ignore[union-attr]
                        handler.stream.write(handler.terminator.join(lines) + handler.terminator)
                        handler.flush()
            except Exception:
                handler.handleError(batch[0])
        current = current.parent if current.propagate else None


def redact(line: str) -> str:
    if "phx_" in line or "whsec_" in line:
        line = _KEY_SHAPE.sub(r"\1_[redacted]", line)
    if "://" in line:
        line = _DSN_PASSWORD.sub(r"\1[redacted]@", line)
    return line


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    attrs = vars(record)
    known: dict[str, Any] | None = attrs.get(_FIELDS)
    if known is not None:  # a quick_record: its fields are the extras
        return known
    names = attrs.keys() - _STANDARD  # in C; then the record's own order
    if not names:
        return {}
    return {k: v for k, v in attrs.items() if k in names}


class KeyValueFormatter(logging.Formatter):
    """The message, then the extras as key=value on the same line; a traceback below it."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in sorted(extras.items()))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


def _encode(out: dict[str, Any]) -> str:
    """One line of JSON: orjson (a fraction of the standard library's cost, which matters on
    the access line every request writes), else the standard library for what orjson refuses
    (an integer beyond 64 bits, a lone surrogate): a log line is never lost to its content."""
    try:
        return orjson.dumps(out, default=str).decode()
    except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
        return _ENCODER.encode(out)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the extras, the exception."""

    _second = -1
    _stamp = ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # one strftime per second, not per line
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return redact(_encode(out))


class RedactKeys(logging.Filter):
    """Replace every `phx_...` token in a record's message with `phx_[redacted]`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "phx_" in message:
            record.msg = _KEY_SHAPE.sub(r"\1_[redacted]", message)
            record.args = None
            record.__dict__.pop("color_message", None)
        return True


def logging_config(
    level: str = "INFO", log_format: Literal["json", "text"] = "text"
) -> dict[str, Any]:
    """A `logging.config.dictConfig` dict: one redacting handler on the root logger.

    uvicorn takes it as `log_config` and applies it in every worker process it spawns; its own
    loggers propagate to the root handler.
    """
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if log_format == "json"
        else {"()": KeyValueFormatter, "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "redact_keys": {"()": RedactKeys},
            "request_id": {"()": RequestIdFilter},
        },
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["request_id", "redact_keys"],
            }
        },
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
        "root": {"handlers": ["default"], "level": level.upper()},
    }


def configure_logging(level: str = "INFO", log_format: Literal["json", "text"] = "text") -> None:
    logging.config.dictConfig(logging_config(level, log_format))
    logging.captureWarnings(True)
    speed_up_records()


def speed_up_records() -> None:
    """Skip what no line of ours prints: the caller's frame, the thread and process names
    (the logging docs' "Optimization" section). The access line is written per request."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
