"""Applying the service database's migrations: one function for the CLI, the tests and benches.

`migrate_database(url)` runs `alembic upgrade heads` (every branch's head) wherever the package is
installed: from a source checkout it uses `alembic.ini`; from a wheel, the `migrations` package.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any


class MigrationsNotFound(RuntimeError):
    """Neither alembic.ini nor the migrations package could be found."""


def alembic_config(database_url: str) -> Any:
    """An Alembic Config for the service's migrations, wherever the package is installed.

    Looks for `alembic.ini` in `$ALEMBIC_CONFIG`, beside the `app` package (a source checkout or
    an editable install) and in the working directory; without one (a wheel installed elsewhere)
    it points `script_location` at the `migrations` package shipped in the wheel.
    """
    from alembic.config import Config

    candidates = [
        Path(os.environ["ALEMBIC_CONFIG"]) if os.environ.get("ALEMBIC_CONFIG") else None,
        Path(__file__).resolve().parents[2] / "alembic.ini",
        Path.cwd() / "alembic.ini",
    ]
    ini = next((p for p in candidates if p is not None and p.is_file()), None)
    if ini is not None:
        cfg = Config(str(ini))
    else:
        spec = importlib.util.find_spec("migrations")
        locations = list(spec.submodule_search_locations or []) if spec else []
        script_dir = next((d for d in locations if (Path(d) / "env.py").is_file()), None)
        if script_dir is None:
            raise MigrationsNotFound("cannot find alembic.ini or the migrations directory")
        cfg = Config()
        cfg.set_main_option("script_location", script_dir)
        cfg.set_main_option("path_separator", "os")
    cfg.attributes["database_url"] = database_url
    return cfg


def migrate_database(database_url: str) -> None:
    """`alembic upgrade heads` (every branch's head) on the service database."""
    from alembic import command

    command.upgrade(alembic_config(database_url), "heads")
