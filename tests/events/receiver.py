"""A real HTTP receiver for webhooks on 127.0.0.1 (asyncio streams, HTTP/1.1 keep-alive).

It records every request (headers, raw body, arrival time) and answers with the status that
`respond` picks, or never answers while `hang` is set. Used by the webhook tests and by
bench/webhooks.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival


@dataclass
class Receiver:
    respond: Callable[[Received], int] = lambda _r: 200
    hang: bool = False
    received: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hooks"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for(self, count: int, within: float = 15) -> list[Received]:
        deadline = time.monotonic() + within
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"received {len(self.received)} of {count} requests")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        return self.received

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                received = Received(headers, body, time.time())
                self.received.append(received)
                self._arrived.set()
                if self.hang:
                    await asyncio.sleep(3600)
                status = self.respond(received)
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\n"
                    "content-type: text/plain\r\n\r\nok".encode()
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()


async def _serve_until_terminated(out: str) -> None:
    """`python -m tests.events.receiver OUT`: print the URL, serve, and on SIGTERM write what
    arrived to OUT as JSON lines ({headers, body, at}) and exit. bench/webhooks.py runs it in
    its own process, so the receiver's clock is not held up by the sender's work."""
    import json
    import signal

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Receiver() as receiver:
        print(receiver.url, flush=True)
        await stop.wait()
    lines = [
        json.dumps({"headers": r.headers, "body": r.body.decode(), "at": r.at})
        for r in receiver.received
    ]
    Path(out).write_text("".join(line + "\n" for line in lines))  # noqa: ASYNC240


if __name__ == "__main__":
    import sys

    asyncio.run(_serve_until_terminated(sys.argv[1]))
