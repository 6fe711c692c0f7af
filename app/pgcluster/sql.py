"""Identifier quoting and DSN helpers for DDL against the warehouse cluster.

DDL cannot take bind parameters for identifiers, so every identifier is validated by
`app.services.names` first and then quoted here; raw input is never interpolated.
"""

from __future__ import annotations

import re

from app.settings import with_database

_SAFE_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")


def quote_ident(name: str) -> str:
    """Quote a validated identifier. Refuses anything outside the validated alphabet."""
    if not _SAFE_IDENTIFIER.fullmatch(name):
        raise ValueError("refusing to quote an identifier that was not validated")
    return '"' + name.replace('"', '""') + '"'


def database_dsn(admin_dsn: str, database: str) -> str:
    """The admin DSN pointed at another database of the same cluster."""
    return with_database(admin_dsn, database)
