"""Which (operation, status) pairs the test suite actually produced.

The suite wraps every app it builds with `StatusRecorder`; the fuzzing server appends to a file
named by `STATUS_RECORD_FILE`. At the end of a full run (`make test` sets
`REQUIRE_DOCUMENTED_STATUSES=1`) every status the OpenAPI document promises for an operation
must have been seen at least once: a documented error that nothing can provoke is a lie in the
docs, and one that nothing tests is an untested promise.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

OBSERVED: set[tuple[str, int]] = set()
NO_SLASH = "_no_slash"


def _operation_id(scope: Scope) -> str | None:
    route = scope.get("route")
    operation_id = getattr(route, "operation_id", None) or getattr(route, "unique_id", None)
    if not operation_id:
        return None
    return str(operation_id).removesuffix(NO_SLASH)


class StatusRecorder:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                operation_id = _operation_id(scope)
                if operation_id:
                    record(operation_id, int(message["status"]))
            await send(message)

        await self.app(scope, receive, recording_send)


def record(operation_id: str, status: int) -> None:
    OBSERVED.add((operation_id, status))
    path = os.environ.get("STATUS_RECORD_FILE")
    if path:
        with open(path, "a") as f:
            f.write(f"{operation_id} {status}\n")


def install(app: FastAPI) -> None:
    app.add_middleware(StatusRecorder)


def documented(app: FastAPI) -> set[tuple[str, int]]:
    pairs: set[tuple[str, int]] = set()
    for item in app.openapi()["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and "operationId" in op:
                for status in op.get("responses", {}):
                    pairs.add((op["operationId"], int(status)))
    return pairs


def load_file(path: str) -> set[tuple[str, int]]:
    pairs = set()
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                op, _, status = line.strip().rpartition(" ")
                if op:
                    pairs.add((op, int(status)))
    return pairs


def recording_app() -> FastAPI:
    """uvicorn factory for the fuzzing server: the real app with the recorder installed."""
    from app.main import create_app

    app = create_app()
    install(app)
    return app
