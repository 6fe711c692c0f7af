"""The API and the long-running worker as child processes, so a test can SIGKILL them by PID."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable

import httpx

from app.devtools.embedded import free_port
from app.settings import Settings
from tests.support.harness import ROOT
from tests.support.lifecycle import worker_env


class ChildProcess:
    def __init__(self, settings: Settings, **env: str) -> None:
        self.env = worker_env(settings, **env)
        self.proc: asyncio.subprocess.Process | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    async def spawn(self) -> None:
        assert self.proc is None, "already running"
        self.proc = await asyncio.create_subprocess_exec(
            *self.command(),
            cwd=str(ROOT),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def wait(self, within: float = 60) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), within)
        self.proc = None
        return code

    async def kill(self) -> int:
        """SIGKILL: no cleanup, no `finally`, like a machine losing power."""
        os.kill(self.pid, signal.SIGKILL)
        return await self.wait(10)

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None


class WorkerProcess(ChildProcess):
    """`python -m app.worker`: the long-running worker with its cron reconciler."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "app.worker"]


class ApiProcess(ChildProcess):
    """`uvicorn app.main:create_app --factory` on a free loopback port."""

    def __init__(self, settings: Settings, **env: str) -> None:
        super().__init__(settings, **env)
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]

    async def start(self) -> None:
        await self.spawn()
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            for _ in range(300):
                assert self.proc is not None and self.proc.returncode is None, "API exited"
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("the API did not start")


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 20, every: float = 0.05
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(every)
