"""Request ids and the per-request facts the outer middleware reports (API.md §10).

A sane incoming `X-Request-ID` (1 to 128 characters of `A-Za-z0-9._-`) is kept, anything else is
replaced by a fresh one. The id lives in a context variable for the duration of the request,
so `RequestIdFilter` can name it on every log line written while the request runs, and the
server-error handler can quote it in a 500's detail.

`RequestInfo` also carries what inner layers learn and the access line and response headers
need: the rate-limit budget of the key (set by `note_rate_limit`).
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass
from random import getrandbits
from typing import Protocol

_SANE = re.compile(rb"[A-Za-z0-9._-]{1,128}")


class RateBudget(Protocol):
    """What the rate limiter reports about a key's window (`RateLimitStatus`)."""

    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def reset(self) -> int: ...


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    rate: RateBudget | None = None


_current: ContextVar[RequestInfo | None] = ContextVar("warehouse_request", default=None)


def new_request_id() -> str:
    # 128 random bits from the process's Mersenne Twister (seeded from the OS, and again in
    # every forked child): an id must be unique, not secret, and this costs no system call.
    return f"{getrandbits(128):032x}"


def accept_request_id(raw: bytes | None) -> str:
    """The incoming header value when it is sane, else a new id."""
    if raw is not None and _SANE.fullmatch(raw):
        return raw.decode("ascii")
    return new_request_id()


def current() -> RequestInfo | None:
    return _current.get()


def current_request_id() -> str | None:
    info = _current.get()
    return info.request_id if info is not None else None


def begin(request_id: str) -> tuple[RequestInfo, object]:
    info = RequestInfo(request_id)
    return info, _current.set(info)


def end(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def note_rate_limit(rate: RateBudget | None) -> None:
    """Remember the key's budget so the response carries the X-RateLimit-* headers."""
    info = _current.get()
    if info is not None and rate is not None:
        info.rate = rate


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record written while a request runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = _current.get()
        if info is not None and not hasattr(record, "request_id"):
            record.request_id = info.request_id
        return True
