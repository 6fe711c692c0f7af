"""Named-parameter SQL for statements run straight on asyncpg (the read pool).

The services write SQL with `:name` parameters, as they do for SQLAlchemy's `text()`; asyncpg
wants `$1, $2, ...`. `named()` rewrites a statement once (cached by its text) and binds a
parameter mapping to the positional arguments, so a hot read pays neither SQLAlchemy's
statement construction nor a session, and asyncpg's per-connection statement cache prepares
it once per connection. The parameter syntax is `text()`'s: `::type` casts and `\\:` are not
parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_PARAM = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    names: tuple[str, ...]

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional arguments for `params`; KeyError names a missing parameter."""
        return tuple(params[name] for name in self.names)


@lru_cache(maxsize=512)
def named(sql: str) -> Statement:
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return Statement(_PARAM.sub(number, sql).replace("\\:", ":"), tuple(names))
