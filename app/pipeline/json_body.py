"""A JSON request body is decoded once per request, by the outer middleware, and reused.

The middleware (app/pipeline/observability.py) must decode a JSON body anyway to apply the body
rules (app/pipeline/body_limits.py); it keeps the value in the request's state
(`DECODED_KEY`). The routes hand it to FastAPI as the request's decoded JSON instead of letting
it parse the same bytes again: `ActionRoute` (app/pipeline/router.py) for the public actions,
`DecodedBodyRoute` for the internal API, where a batch of rows can be megabytes.

`loads` decodes with orjson (several times faster than the standard library on large bodies)
when that is certain to give the standard library's value, and with the standard library
otherwise, so the values and every error answer stay exactly those of `json.loads`:
- any document orjson refuses (lone surrogates, a byte-order mark, UTF-16, numbers beyond a
  double, too deep, ...) is decoded again by `json.loads`, which gives today's value or error;
- orjson turns an integer beyond 64 bits into a float where `json.loads` keeps it exact, so a
  body holding a run of 19 or more digits (anywhere, strings included) is left to `json.loads`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

DECODED_KEY = "decoded_json_body"
NOT_DECODED: Any = object()
# Every digit becomes "0", every other byte a space: a run of 19 digits is then a plain
# substring search (a regular expression over a large body costs ten times as much).
_DIGITS_ONLY = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_NUMBER = b"0" * 19


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(raw: bytes) -> tuple[Any, bool]:
    """`json.loads(raw)` with NaN and Infinity refused: ValueError (JSONDecodeError,
    UnicodeDecodeError) or RecursionError for a body that is not JSON. The flag says orjson
    decoded it, so no string in it holds an unpaired surrogate."""
    if _LONG_NUMBER not in raw.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(raw), True
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw, parse_constant=_reject_constant), False


def decoded_body(scope: MutableMapping[str, Any]) -> Any:
    """The JSON value the middleware decoded from this request's body, or NOT_DECODED."""
    state = scope.get("state")
    return NOT_DECODED if state is None else state.get(DECODED_KEY, NOT_DECODED)


def reuse_decoded_body(request: Request) -> None:
    """Make `request.json()` answer the middleware's value without decoding again."""
    value = decoded_body(request.scope)
    if value is not NOT_DECODED:
        request._json = value


class DecodedBodyRoute(APIRoute):
    """An APIRoute whose JSON body comes decoded from the middleware (FastAPI still decides,
    from the content type, whether the body is JSON at all)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()
        if not (self.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}:
            return inner

        async def handler(request: Request) -> Response:
            reuse_decoded_body(request)
            return await inner(request)

        return handler
