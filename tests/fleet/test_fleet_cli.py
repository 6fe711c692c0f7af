"""`warehouse warehouses move` and `warehouse clusters drain` as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.pgcluster import binaries
from tests.fleet.conftest import DEFAULT, B, C, Fleet
from tests.fleet.test_moves import _target_major, operation, provision_on
from tests.support.harness import settings_env
from tests.support.lifecycle import run_burst_worker, status

SCRIPT = Path(sys.executable).parent / "warehouse"


async def start_cli(settings: Any, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *args,
        env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def until_migrating(client: httpx.AsyncClient, tenant: Any) -> None:
    """The CLI has committed its move (the worker must not start before it)."""
    for _ in range(200):
        if (await status(client, tenant))["state"] == "migrating":
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the CLI did not start the move")


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_move_with_wait_follows_the_operation(
    client: httpx.AsyncClient, fleet: Fleet, settings: Any
) -> None:
    tenant, name, password = await provision_on(client, fleet, settings, DEFAULT, rows=20)
    await fleet.only(DEFAULT, B)
    proc = await start_cli(
        settings, "warehouses", "move", "--org", tenant.org_id, "--cluster", B, "--json", "--wait"
    )
    await until_migrating(client, tenant)
    await run_burst_worker(settings)
    code, out, err = await finish(proc)
    assert code == 0, err
    answer = json.loads(out)
    assert list(answer) == ["operation_id"]
    assert f"[1/1] {answer['operation_id']} {name} -> {B}: succeeded" in err
    assert "1 of 1 succeeded, 0 failed" in err
    assert (await operation(client, tenant, answer["operation_id"]))["status"] == "succeeded"
    conn = await fleet.login(B, name, password)
    await conn.close()
    for secret in (password, fleet.clusters[B].admin_password, "postgresql://"):
        assert secret not in out + err
    await fleet.drop_everywhere(name)


async def test_a_failed_move_exits_1(
    client: httpx.AsyncClient,
    fleet: Fleet,
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant, name, _ = await provision_on(client, fleet, settings, DEFAULT, rows=5)
    await fleet.only(DEFAULT, B)
    fake = tmp_path / "pg_restore"
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then echo "pg_restore (PostgreSQL) '
        f'{await _target_major(fleet)}.0"; exit 0; fi\n'
        "cat >/dev/null; exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PG_BIN_DIR", str(tmp_path))
    binaries.clear_cache()
    proc = await start_cli(
        settings, "warehouses", "move", "--org", tenant.org_id, "--cluster", B, "--wait"
    )
    try:
        await until_migrating(client, tenant)
        await run_burst_worker(settings, within=120)
    finally:
        binaries.clear_cache()
    code, out, err = await finish(proc)
    assert code == 1, err
    assert out.startswith("Move started: operation ")
    assert "failed (Move failed at step 'copy': pg_restore exited with status 1)" in err
    assert "0 of 1 succeeded, 1 failed" in err
    assert (await status(client, tenant))["state"] == "ready"
    await fleet.drop_everywhere(name)


async def test_refusals_print_one_line(fleet: Fleet, settings: Any) -> None:
    code, out, err = await finish(
        await start_cli(settings, "warehouses", "move", "--org", "nope", "--cluster", B)
    )
    assert (code, out, err) == (1, "", "error: invalid --org: not an organization id (uuid)\n")
    code, _, err = await finish(
        await start_cli(
            settings,
            "warehouses",
            "move",
            "--org",
            "00000000-0000-4000-8000-000000000001",
            "--cluster",
            B,
        )
    )
    assert (code, err) == (1, "error: Organization not found\n")
    code, _, err = await finish(await start_cli(settings, "clusters", "drain", "no-such-cluster"))
    assert (code, err) == (1, "error: No warehouse cluster with this name is registered\n")


async def test_cluster_commands(fleet: Fleet, settings: Any) -> None:
    third = fleet.clusters[C]

    async def run(*args: str) -> tuple[int, str, str]:
        return await finish(await start_cli(settings, "clusters", *args))

    code, out, err = await run(
        "add",
        "--name",
        "cli-x",
        "--admin-url",
        third.admin_dsn,
        "--public-host",
        "127.0.0.1",
        "--public-port",
        str(third.port),
        "--max-warehouses",
        "7",
        "--label",
        "region=eu",
        "--json",
    )
    assert code == 0, err
    added = json.loads(out)
    assert set(added) == {
        "name",
        "state",
        "public_host",
        "public_port",
        "max_warehouses",
        "warehouses",
        "healthy",
        "last_checked_at",
        "labels",
    }
    assert (added["name"], added["state"], added["max_warehouses"]) == ("cli-x", "active", 7)
    assert added["labels"] == {"region": "eu"}
    assert third.admin_password not in out + err
    try:
        code, out, err = await run("pause", "cli-x", "--json")
        assert code == 0 and json.loads(out)["state"] == "paused", err
        code, out, err = await run("list", "--json")
        listed = {c["name"]: c for c in json.loads(out)}
        assert listed["cli-x"]["state"] == "paused" and DEFAULT in listed
        assert third.admin_password not in out
        code, out, err = await run("resume", "cli-x")
        assert code == 0 and out.startswith("cli-x\tactive"), (out, err)
        code, out, err = await run("drain", "cli-x", "--json", "--wait")
        assert (code, json.loads(out)) == (0, {"operation_ids": []}), err
        assert (await fleet.get("cli-x"))["state"] == "drained"
        code, out, err = await run("drain", "cli-x")
        assert code == 1 and err == "error: The cluster 'cli-x' is already drained\n"
    finally:
        await run("pause", "cli-x")
        code, out, err = await run("remove", "cli-x")
    assert (code, out) == (0, "Removed cluster cli-x\n"), err
    code, out, err = await run("remove", "cli-x")
    assert (code, err) == (1, "error: No warehouse cluster with this name is registered\n")
    code, out, err = await run(
        "add",
        "--name",
        "cli-y",
        "--admin-url",
        "postgresql://postgres:wrong@127.0.0.1:1/postgres",
        "--public-host",
        "h",
        "--public-port",
        "1",
    )
    assert code == 1 and err.startswith("error: Could not connect to the cluster"), err
    assert "wrong" not in err
