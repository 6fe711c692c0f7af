"""Integer query parameters of the public actions (API.md §4.3): any size is an integer.

`limit=10**30` is capped by the action, not refused; an offset of any size is a page past the
last row. A query value is taken as a string and parsed here, so FastAPI's length caps and
Python's digit limit for `int()` never turn a valid integer into a 400 or a 500.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Query

from app.core.errors import ValidationFailed

_INT = re.compile(r"[+-]?[0-9]+")
# Python refuses to convert longer digit strings (sys.int_max_str_digits); an integer that long
# is past every cap and every row anyway, so it is clamped to this many digits.
MAX_DIGITS = 4000

# No length cap before parse_int sees the value.
IntQuery = Annotated[str | None, Query()]


def parse_int(raw: str | None, attr: str, default: int, message: str | None = None) -> int:
    """An integer of any size, or 400; huge values come back huge, for the caller to cap."""
    if raw is None:
        return default
    text = raw.strip()
    if not _INT.fullmatch(text):
        raise ValidationFailed(message or f"{attr} must be an integer", attr=attr)
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > MAX_DIGITS:
        digits = "9" * MAX_DIGITS
    return sign * int(digits)
