"""Validation of warehouse, table and schema names (API.md §4.1).

Pure functions: each returns the cleaned name or raises `ValidationFailed` with the exact message
PostHog clients show. Only names that pass these rules ever reach SQL, and then only quoted.
"""

from __future__ import annotations

import re

from app.core.errors import ValidationFailed

WAREHOUSE_NAME_RE = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
RESERVED_DATABASE_NAMES = frozenset({"postgres", "template0", "template1"})
# PostgreSQL refuses to create `pg_*` schemas; `public` already holds the table-suffix layout.
RESERVED_SCHEMA_NAMES = frozenset({"public", "information_schema"})

WAREHOUSE_SHAPE_MESSAGE = (
    "Warehouse name must be a DNS label: lowercase letters, numbers, and hyphens, starting with "
    "a letter and ending with a letter or number"
)


def validate_warehouse_name(name: str | None, *, attr: str = "database_name") -> str:
    if name is None or name == "":
        raise ValidationFailed("database_name is required", attr=attr, code="required")
    if not 3 <= len(name) <= 63:
        raise ValidationFailed("Warehouse name must be 3-63 characters", attr=attr)
    if not WAREHOUSE_NAME_RE.fullmatch(name):
        raise ValidationFailed(WAREHOUSE_SHAPE_MESSAGE, attr=attr)
    return name


def reserved_reason(name: str) -> str | None:
    """Why the warehouse cluster itself reserves `name`, or None."""
    if name in RESERVED_DATABASE_NAMES or name.startswith("pg"):
        return f"'{name}' is reserved by the warehouse cluster"
    return None


def _validate_identifier(
    name: str | None, *, field: str, attr: str, label: str, max_len: int
) -> str:
    if name is None or name == "":
        raise ValidationFailed(f"{field} is required", attr=attr, code="required")
    if len(name) > max_len:
        raise ValidationFailed(f"{label} must be at most {max_len} characters", attr=attr)
    if not IDENTIFIER_RE.fullmatch(name):
        raise ValidationFailed(
            f"{label} must use only lowercase letters, numbers, and underscores, "
            "and must not start with a number",
            attr=attr,
        )
    return name


def validate_table_name(name: str | None, *, attr: str = "table_name") -> str:
    return _validate_identifier(name, field="table_name", attr=attr, label="Table name", max_len=55)


def validate_schema_name(name: str | None, *, attr: str = "schema_name") -> str:
    return _validate_identifier(
        name, field="schema_name", attr=attr, label="Schema name", max_len=63
    )


def reserved_schema_reason(name: str) -> str | None:
    """Why the warehouse database itself reserves `name` as a schema, or None."""
    if name in RESERVED_SCHEMA_NAMES or name.startswith("pg_"):
        return f"The schema name '{name}' is reserved by the warehouse"
    return None
