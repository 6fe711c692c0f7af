"""Finding pg_dump/pg_restore of a server's major version, and running them without argv secrets."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from app.devtools.embedded import PasswordCheckingCluster
from app.pgcluster import binaries
from app.pgcluster.binaries import (
    BinariesNotFound,
    binary_major,
    find_binary,
    libpq_env,
    major_from_version_num,
    pgserver_bin_dir,
)


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("PG_BIN_DIR", raising=False)
    binaries.clear_cache()
    yield
    binaries.clear_cache()


def _fake_program(directory: Path, name: str, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_major_version_from_server_version_num() -> None:
    assert major_from_version_num(150020) == 15
    assert major_from_version_num("160002") == 16
    assert major_from_version_num(90624) == 9


async def _server_major(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return major_from_version_num(await conn.fetchval("SHOW server_version_num"))
    finally:
        await conn.close()


async def test_finds_programs_matching_each_running_server(
    warehouse_cluster: PasswordCheckingCluster,
) -> None:
    service_db = os.environ.get("TEST_DATABASE_URL")
    dsns = [warehouse_cluster.admin_dsn] + ([service_db] if service_db else [])
    for dsn in dsns:
        major = await _server_major(dsn)
        for program in ("pg_dump", "pg_restore"):
            path = find_binary(program, major)
            assert path.name == program
            assert binary_major(path) == major


def test_pgserver_wheel_binaries_are_found() -> None:
    wheel = pgserver_bin_dir()
    assert wheel is not None and (wheel / "pg_dump").is_file()
    major = binary_major(wheel / "pg_dump")
    assert major is not None
    # With no per-version Debian install of that major, the wheel's binary is the one chosen.
    if not Path(binaries.DEBIAN_LAYOUT.format(major=major)).is_dir():
        assert find_binary("pg_dump", major) == wheel / "pg_dump"


def test_pg_bin_dir_comes_first_and_wrong_versions_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = _fake_program(tmp_path / "wrong", "pg_dump", "98.1")
    right = _fake_program(tmp_path / "right", "pg_dump", "99.3")
    monkeypatch.setenv("PG_BIN_DIR", str(wrong.parent))
    monkeypatch.setenv("PATH", f"{right.parent}{os.pathsep}{os.environ['PATH']}")
    assert find_binary("pg_dump", 99) == right  # PG_BIN_DIR's one reports 98: skipped
    binaries.clear_cache()
    assert find_binary("pg_dump", 98) == wrong


def test_result_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_program(tmp_path / "bin", "pg_restore", "97.0")
    monkeypatch.setenv("PG_BIN_DIR", str(fake.parent))
    assert find_binary("pg_restore", 97) == fake
    fake.unlink()  # a cached answer does not look again
    assert find_binary("pg_restore", 97) == fake


def test_no_match_names_the_major_version(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BinariesNotFound, match=r"No pg_dump for PostgreSQL 42 found"):
        find_binary("pg_dump", 42)


def test_env_carries_the_dsn_and_drops_inherited_pg_variables() -> None:
    env = libpq_env(
        "postgresql://ad%40min:p%2Fss%3Aw@db.example:6543/postgres?sslmode=require",
        database="acme",
        base={"PATH": "/bin", "PGPASSWORD": "stale", "PGSERVICE": "other"},
    )
    assert env["PGHOST"] == "db.example"
    assert env["PGPORT"] == "6543"
    assert env["PGUSER"] == "ad@min"
    assert env["PGPASSWORD"] == "p/ss:w"
    assert env["PGDATABASE"] == "acme"
    assert env["PGSSLMODE"] == "require"
    assert env["PATH"] == "/bin"
    assert "PGSERVICE" not in env


def test_env_refuses_what_is_not_a_postgres_dsn() -> None:
    with pytest.raises(ValueError, match="postgresql"):
        libpq_env("mysql://u:p@h/db")


def test_pg_dump_logs_in_with_the_password_from_the_environment_only(
    warehouse_cluster: PasswordCheckingCluster,
) -> None:
    dsn = warehouse_cluster.admin_dsn
    major = asyncio.run(_server_major(dsn))
    argv = [str(find_binary("pg_dump", major)), "--schema-only", "--format=plain"]
    assert warehouse_cluster.admin_password not in " ".join(argv)
    done = subprocess.run(
        argv, env=libpq_env(dsn), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "PostgreSQL database dump" in done.stdout
    # The password-checking cluster really checks it: a wrong one is refused.
    bad = dsn.replace(warehouse_cluster.admin_password, "wrong-password")
    refused = subprocess.run(
        argv, env=libpq_env(bad), capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode != 0
    assert "password authentication failed" in refused.stderr
