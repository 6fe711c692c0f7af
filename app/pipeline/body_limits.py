"""Body limits and the text rules every request body and query string obeys (API.md §10).

- A public body over 64 KiB, or an /internal/ one over `MAX_INTERNAL_BODY_BYTES`, is refused
  413 (`invalid_request` / `payload_too_large`) before authentication; the body is never read
  past the limit. The outer middleware (app/pipeline/observability.py) refuses a declared
  `Content-Length` at once and counts a chunked body as it arrives.
- JSON nested deeper than 64 arrays/objects is malformed (400 `parse_error`), like JSON that
  does not parse (NaN and Infinity included) or is not UTF-8; no depth ever reaches the
  parser's recursion limit as a 500.
- Text holding a NUL character or an unpaired surrogate, in a body or a query value, is
  refused 400 `invalid_input` (PostgreSQL cannot store it).

Those 400s are found by the middleware but answered in the API.md §3 order: it records the
problem in the request's state (`request_problem`) and hands the app an empty body, and the
access checks raise it once they passed (`raise_request_problem`): the public guard after
the key, team, scopes and admin checks, the internal token check after the token.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from itertools import chain
from typing import Any
from urllib.parse import unquote_to_bytes

from app.core.errors import APIError, ParseError, ValidationFailed
from app.pipeline.json_body import NOT_DECODED, loads

PUBLIC_MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")
_UTF8_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")
_NUL_DETAIL = "contains a NUL character or an unpaired surrogate, which cannot be stored."
PROBLEM_KEY = "request_problem"

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


class PayloadTooLarge(APIError):
    status_code = 413
    type = "invalid_request"
    code = "payload_too_large"
    default_detail = "Request body is too large."


class TooLarge(Exception):
    """The body went past the limit while it was read."""


def body_limit(path: str, internal_limit: int) -> int:
    return internal_limit if path.startswith("/internal/") else PUBLIC_MAX_BODY_BYTES


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, counted as it arrives; TooLarge past `limit` (nothing more is read);
    None when the client went away first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def is_json(content_type: bytes | None) -> bool:
    """As FastAPI and the router decide: no content type, or one that says json."""
    return content_type is None or b"json" in content_type.lower()


def check_body(raw: bytes, json_body: bool) -> tuple[APIError | None, Any]:
    """The problem of a body that breaks the rules (or None), and the decoded JSON of a body
    that keeps them (or NOT_DECODED), which the routes reuse (app/pipeline/json_body.py)."""
    if b"\x00" in raw:
        return ValidationFailed(f"The request body {_NUL_DETAIL}"), NOT_DECODED
    if not json_body or not raw:
        return None, NOT_DECODED
    try:
        value, strict = loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, too deep
        return ParseError(), NOT_DECODED
    deep = raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH
    # Only an escape can put a NUL or an unpaired surrogate in a decoded string, and a strict
    # decode has refused every unpaired surrogate already.
    escaped = b"\\u0000" in raw if strict else b"\\u" in raw or b"\\U" in raw
    if escaped or (deep and _deeper_than(value, MAX_JSON_DEPTH)):
        problem = _inspect(value, texts=escaped)
        if problem is not None:
            return problem, NOT_DECODED
    return None, value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether an array or object sits below `limit` levels of them (the top one is level 1),
    looking at containers only, one level at a time."""
    level = [value] if type(value) is dict or type(value) is list else []
    for _ in range(limit):
        children = chain.from_iterable(
            [item.values() if type(item) is dict else item for item in level]
        )
        level = [child for child in children if type(child) is dict or type(child) is list]
        if not level:
            return False
    return True


def _inspect(value: Any, *, texts: bool) -> APIError | None:
    """Too deep (parse_error, which wins), else the first bad string (invalid_input)."""
    text_problem: APIError | None = None
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_JSON_DEPTH:
                return ParseError(f"Malformed request body: nested deeper than {MAX_JSON_DEPTH}.")
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if texts and text_problem is None and _bad_text(key):
                    text_problem = _text_problem(where)
                stack.append((child, depth + 1, where))
        elif isinstance(item, list):
            if depth > MAX_JSON_DEPTH:
                return ParseError(f"Malformed request body: nested deeper than {MAX_JSON_DEPTH}.")
            for index, child in enumerate(item):
                stack.append((child, depth + 1, f"{path}.{index}" if path else str(index)))
        elif texts and text_problem is None and isinstance(item, str) and _bad_text(item):
            text_problem = _text_problem(path)
    return text_problem


def _bad_text(text: str) -> bool:
    return "\x00" in text or _SURROGATE.search(text) is not None


def _text_problem(attr: str) -> APIError:
    attr = _printable(attr) if attr else ""
    if not attr:
        return ValidationFailed(f"The request body {_NUL_DETAIL}")
    return ValidationFailed(f"{attr}: {_NUL_DETAIL}", attr=attr)


def _printable(name: str) -> str:
    return "".join(c for c in name if c.isprintable() and not _SURROGATE.match(c))[:100]


def check_query(query_string: bytes) -> APIError | None:
    """A query value (or name) holding a NUL or an encoded unpaired surrogate."""
    if b"%" not in query_string and b"\x00" not in query_string:
        return None
    for pair in query_string.split(b"&"):
        name, _, value = pair.partition(b"=")
        for part in (name, value):
            decoded = unquote_to_bytes(part)
            if b"\x00" in decoded or _UTF8_SURROGATE.search(decoded):
                attr = _printable(unquote_to_bytes(name).decode("utf-8", "replace"))
                return ValidationFailed(f"{attr}: {_NUL_DETAIL}", attr=attr or None)
    return None


def raise_request_problem(scope: MutableMapping[str, Any]) -> None:
    """Raise the problem the middleware found in the body or query (after the access checks)."""
    state = scope.get("state")
    problem = state.get(PROBLEM_KEY) if state is not None else None
    if problem is not None:
        raise problem
