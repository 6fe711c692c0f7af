"""API-key scopes as data. `X:write` satisfies `X:read`; `*` satisfies everything."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

SCOPE_PATTERN = re.compile(r"^(\*|[a-z_]{1,64}:(read|write))$")


class Scope(enum.StrEnum):
    WAREHOUSE_VIEW_READ = "warehouse_view:read"
    WAREHOUSE_VIEW_WRITE = "warehouse_view:write"
    EXTERNAL_DATA_SOURCE_READ = "external_data_source:read"
    EXTERNAL_DATA_SOURCE_WRITE = "external_data_source:write"
    QUERY_READ = "query:read"


def scope_satisfied(granted: Iterable[str], required: str) -> bool:
    granted_set = set(granted)
    if "*" in granted_set or required in granted_set:
        return True
    obj, _, action = required.partition(":")
    return action == "read" and f"{obj}:write" in granted_set


def first_missing_scope(granted: Iterable[str], required: Iterable[str]) -> str | None:
    granted_list = list(granted)
    for scope in required:
        if not scope_satisfied(granted_list, scope):
            return scope
    return None
