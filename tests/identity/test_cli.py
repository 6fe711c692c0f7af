"""The `warehouse` command line, run as a real subprocess against the test database."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli import main
from app.devtools.embedded import free_port
from app.settings import Settings
from tests.support.http import assert_error, sql
from tests.support.status_recorder import expect

SCRIPT = Path(sys.executable).parent / "warehouse"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)


def cli_env(settings: Settings, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ALEMBIC_CONFIG",)}
    env.update(
        ENVIRONMENT="test",
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        SECRET_KEY=settings.secret_key.get_secret_value(),
        INTERNAL_API_TOKEN=settings.internal_api_token.get_secret_value(),
    )
    env.update(overrides)
    return env


async def warehouse(settings: Settings, *args: str, **env: str) -> Result:
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *args,
        env=cli_env(settings, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def test_create_a_tenant_from_the_cli_and_use_its_key(
    client: httpx.AsyncClient, settings: Settings
):
    org = (await warehouse(settings, "orgs", "create", "--name", "CLI Co", "--json")).json()
    assert org["name"] == "CLI Co" and uuid.UUID(org["id"])
    project = (
        await warehouse(
            settings,
            "projects", "create", "--org", org["id"], "--name", "Web",
            "--timezone", "Europe/Paris", "--json",
        )
    ).json()  # fmt: skip
    assert project["organization_id"] == org["id"]
    assert isinstance(project["environment_id"], int)
    assert project["timezone"] == "Europe/Paris"
    env2 = (
        await warehouse(
            settings, "environments", "create", "--project", str(project["id"]),
            "--name", "staging", "--json",
        )
    ).json()  # fmt: skip
    assert env2["project_id"] == project["id"] and env2["timezone"] == "UTC"
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    user = (
        await warehouse(
            settings, "users", "create", "--org", org["id"], "--email", email,
            "--level", "admin", "--json",
        )
    ).json()  # fmt: skip
    assert user["email"] == email and user["level"] == 8 and user["created"] is True
    key = (
        await warehouse(
            settings, "keys", "create", "--user", email, "--scopes", "warehouse_view:read",
            "--teams", str(project["environment_id"]), "--label", "from cli", "--json",
        )
    ).json()  # fmt: skip
    assert key["key"].startswith("phx_") and key["mask_value"] == f"phx_...{key['key'][-4:]}"
    assert key["scopes"] == ["warehouse_view:read"]
    assert key["scoped_teams"] == [project["environment_id"]]

    headers = {"Authorization": f"Bearer {key['key']}"}
    base = "/api/{}/{}/data_warehouse/check-database-name/?name=acme"
    r = await client.get(base.format("projects", project["id"]), headers=headers)
    expect(r, 200)
    assert r.json() == {"name": "acme", "available": True}
    r = await client.get(base.format("environments", env2["id"]), headers=headers)
    assert_error(
        r,
        403,
        "permission_denied",
        f"API key does not have access to the requested project: ID {env2['id']}.",
    )
    # Only the hash is stored.
    rows = await sql(settings, "SELECT secure_value FROM personal_api_keys WHERE id=$1",
                     uuid.UUID(key["id"]))  # fmt: skip
    assert rows[0]["secure_value"].startswith("sha256$") and key["key"] not in str(rows[0])
    # The same email again: the user is reused and the level updated.
    again = await warehouse(
        settings, "users", "create", "--org", org["id"], "--email", email.upper(),
        "--level", "member",
    )  # fmt: skip
    assert again.code == 0, again.err
    assert again.out.startswith(f"Updated user {email}: id {user['id']}, member")


ERROR_CASES = [
    (("projects", "create", "--org", "not-a-uuid", "--name", "x"), {}, "invalid --org"),
    (("projects", "create", "--org", str(uuid.uuid4()), "--name", "x", "--timezone", "Nope/Zone"),
     {}, "invalid --timezone"),
    (("users", "create", "--org", str(uuid.uuid4()), "--email", "a@b.c", "--level", "owner"),
     {}, "Organization not found."),
    (("keys", "create", "--user", "nobody@nowhere.test", "--scopes", "*"),
     {}, "No user with email nobody@nowhere.test."),
    (("keys", "create", "--user", "a@b.c", "--scopes", "everything"), {}, "invalid --scopes"),
    (("keys", "create", "--user", "a@b.c", "--scopes", "*", "--teams", "one"),
     {}, "invalid --teams"),
    (("environments", "create", "--project", "999999999", "--name", "x"),
     {}, "Project not found."),
    (("orgs", "create", "--name", "x"), {"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    (("orgs", "create", "--name", "x"),
     {"ENVIRONMENT": "production", "SECRET_KEY": "dev-insecure-secret-key-change-me"},
     "SECRET_KEY must be set outside dev"),
]  # fmt: skip


def test_cli_errors_are_one_line_without_traceback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    # In-process through the same entry point as the console script (subprocesses are slow
    # on a busy machine; one real subprocess failure is checked below).
    for args, env, expected in ERROR_CASES:
        with monkeypatch.context() as m:
            for name, value in cli_env(settings, **env).items():
                m.setenv(name, value)
            m.setattr(sys, "argv", ["warehouse", *args])
            with pytest.raises(SystemExit) as exit_info:
                main()
        out, err = capsys.readouterr()
        assert exit_info.value.code == 1, (args, out, err)
        assert err.startswith("error: ") and expected in err, (args, err)
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        assert out == ""


async def test_cli_error_from_the_real_script(settings: Settings):
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    result = await warehouse(settings, "orgs", "create", "--name", "x", DATABASE_URL=closed)
    assert result.code == 1
    assert result.err.startswith("error: cannot reach the service database"), result.err
    assert "Traceback" not in result.err and len(result.err.splitlines()) == 1
    usage = await warehouse(settings, "users", "create", "--org", "x", "--email", "a@b.c",
                            "--level", "king")  # fmt: skip
    assert usage.code == 2 and "Traceback" not in usage.err and "king" in usage.err


async def test_migrate_is_idempotent(settings: Settings):
    result = await warehouse(settings, "migrate")
    assert result.code == 0, result.err
    assert "database is up to date" in result.err
    rows = await sql(settings, "SELECT version_num FROM alembic_version")
    assert rows
