"""Logging: one line per record, with the fields passed in `extra` appended as key=value.

Personal API keys may arrive in a query string (`?personal_api_key=phx_...`), which access logs
print verbatim; the handler's `RedactKeys` filter masks anything shaped like a key first.
"""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any

# uvicorn adds `color_message` (the message again, with terminal colours) to its records.
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}
_KEY_SHAPE = re.compile(r"phx_[A-Za-z0-9]+")


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if not extras:
            return base
        return base + " " + " ".join(f"{k}={v}" for k, v in sorted(extras.items()))


class RedactKeys(logging.Filter):
    """Replace every `phx_...` token in a record's message with `phx_[redacted]`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "phx_" in message:
            record.msg = _KEY_SHAPE.sub("phx_[redacted]", message)
            record.args = None
            record.__dict__.pop("color_message", None)
        return True


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` dict: one redacting key=value handler on the root logger.

    uvicorn takes it as `log_config` and applies it in every worker process it spawns; its own
    loggers (access log included) propagate to the root handler.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact_keys": {"()": RedactKeys}},
        "formatters": {
            "kv": {"()": KeyValueFormatter, "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"}
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "kv",
                "filters": ["redact_keys"],
            }
        },
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
        "root": {"handlers": ["default"], "level": level.upper()},
    }


def configure_logging(level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(level))
