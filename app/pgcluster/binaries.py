"""Find the `pg_dump` / `pg_restore` that fit a PostgreSQL server, and run them safely.

A dump must be taken by a `pg_dump` of the server's own major version (an older one refuses, a
newer one may write what the target's `pg_restore` cannot read). Candidates, in order:

1. `$PG_BIN_DIR` (an operator's explicit choice),
2. Debian's per-version install, `/usr/lib/postgresql/<major>/bin`,
3. the binaries shipped inside the `pgserver` wheel (the same ones `app.embedded` uses),
4. `PATH`.

Each candidate is checked with `--version`; the answer is cached per (program, major). When
none fits, `BinariesNotFound` names the program and the major version it needed.

`libpq_env()` turns an admin DSN into the environment of such a subprocess, so the password
travels in `PGPASSWORD` and never in argv (where `ps` would show it to every local user).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

DEBIAN_LAYOUT = "/usr/lib/postgresql/{major}/bin"
_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_CACHE: dict[tuple[str, int], Path] = {}


class BinariesNotFound(RuntimeError):
    """No installed program matches the server's major version."""


def major_from_version_num(version_num: int | str) -> int:
    """`SHOW server_version_num` (e.g. 150020 or 90624) -> the major version (15, 9)."""
    number = int(version_num)
    return number // 10000


def binary_major(path: Path) -> int | None:
    """The major version a program reports with `--version`, or None if it does not run."""
    try:
        out = subprocess.run(  # noqa: S603 - a candidate binary, fixed argument, no shell
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_RE.search(out.stdout)
    if out.returncode != 0 or match is None:
        return None
    return int(match.group(1))


def pgserver_bin_dir() -> Path | None:
    """The `bin` directory inside the installed `pgserver` package, found without importing it."""
    try:
        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "pginstall" / "bin"
        if candidate.is_dir():
            return candidate
    return None


def candidate_dirs(major: int) -> list[Path]:
    dirs: list[Path] = []
    configured = os.environ.get("PG_BIN_DIR")
    if configured:
        dirs.append(Path(configured))
    dirs.append(Path(DEBIAN_LAYOUT.format(major=major)))
    wheel = pgserver_bin_dir()
    if wheel is not None:
        dirs.append(wheel)
    return dirs


def _candidates(program: str, major: int) -> list[Path]:
    found: list[Path] = [d / program for d in candidate_dirs(major)]
    on_path = shutil.which(program)
    if on_path:
        found.append(Path(on_path))
    seen: set[Path] = set()
    unique: list[Path] = []
    for path in found:
        if path not in seen and path.is_file() and os.access(path, os.X_OK):
            seen.add(path)
            unique.append(path)
    return unique


def find_binary(program: str, major: int) -> Path:
    """The path of `program` (`pg_dump`, `pg_restore`, ...) of exactly this major version."""
    key = (program, major)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    for path in _candidates(program, major):
        if binary_major(path) == major:
            _CACHE[key] = path
            return path
    raise BinariesNotFound(
        f"No {program} for PostgreSQL {major} found (looked in $PG_BIN_DIR, "
        f"{DEBIAN_LAYOUT.format(major=major)}, the pgserver package and PATH); "
        f"install the PostgreSQL {major} client programs or set PG_BIN_DIR"
    )


def clear_cache() -> None:
    _CACHE.clear()


def dump_restore_pair(source_major: int, target_major: int) -> tuple[Path, Path]:
    """`pg_dump` matching the source server and `pg_restore` matching the target server."""
    return find_binary("pg_dump", source_major), find_binary("pg_restore", target_major)


_QUERY_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
}


def libpq_env(
    dsn: str, *, database: str | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment for a libpq program connecting with `dsn` (no password in argv).

    Inherited `PG*` variables are dropped first, so nothing from the caller's environment (a
    `PGSERVICE`, another `PGPASSWORD`) changes where the program connects. `database`
    overrides the DSN's database.
    """
    parts = urlsplit(dsn)
    if parts.scheme not in {"postgresql", "postgres", "postgresql+asyncpg"}:
        raise ValueError("not a postgresql:// DSN")
    source = dict(os.environ if base is None else base)
    env = {k: v for k, v in source.items() if not k.startswith("PG")}
    if parts.hostname:
        env["PGHOST"] = unquote(parts.hostname)
    if parts.port:
        env["PGPORT"] = str(parts.port)
    if parts.username:
        env["PGUSER"] = unquote(parts.username)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
    path_db = unquote(parts.path.lstrip("/"))
    if path_db:
        env["PGDATABASE"] = path_db
    for key, value in parse_qsl(parts.query):
        name = _QUERY_ENV.get(key)
        if name:
            env[name] = value
    if database is not None:
        env["PGDATABASE"] = database
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    return env
