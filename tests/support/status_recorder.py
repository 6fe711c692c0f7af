"""Which (operation, status) pairs the test suite asserted.

Tests assert a status with `expect(response, status)`: it fails the test on another status and,
when it passes, records the pair for the operation the request went to (found from the method
and path in the app's OpenAPI document). Responses a test merely produced, or a fuzzer drew
out, do not count: only an assertion does. At the end of a full run (`make test` sets
`REQUIRE_DOCUMENTED_STATUSES=1`) every status the OpenAPI document promises for an operation
must have been asserted at least once: a documented error that nothing can provoke is a lie in
the docs, and one that no test checks is an untested promise.
"""

from __future__ import annotations

import functools
import os
import re

import httpx
from fastapi import FastAPI
from starlette.routing import compile_path

ASSERTED: set[tuple[str, int]] = set()


@functools.cache
def _operations() -> list[tuple[str, re.Pattern[str], str]]:
    """(method, path regex, operationId) for every operation of the OpenAPI document."""
    from app.main import create_app
    from app.settings import Settings

    found = []
    for path, item in create_app(Settings(_env_file=None)).openapi()["paths"].items():
        regex = compile_path(path.rstrip("/") + "/" if path.endswith("/") else path)[0]
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                found.append((method.upper(), regex, str(op["operationId"])))
    return found


def operation_of(method: str, path: str) -> str | None:
    """The operationId a request to `path` reaches (with or without the trailing slash)."""
    candidates = (path, path + "/") if not path.endswith("/") else (path,)
    for wanted in candidates:
        for op_method, regex, operation_id in _operations():
            if op_method == method.upper() and regex.match(wanted):
                return operation_id
    return None


def expect(response: httpx.Response, status: int) -> httpx.Response:
    """Assert the response's status, and count the assertion for the documented-status gate."""
    request = response.request
    assert response.status_code == status, (
        f"{request.method} {request.url.path}: expected {status}, got {response.status_code}: "
        f"{response.text[:1000]}"
    )
    operation_id = operation_of(request.method, request.url.path)
    if operation_id is not None:
        record(operation_id, status)
    return response


def record(operation_id: str, status: int) -> None:
    ASSERTED.add((operation_id, status))
    path = os.environ.get("STATUS_RECORD_FILE")
    if path:  # test processes of one run (e.g. pytest-xdist workers) share the file
        with open(path, "a") as f:
            f.write(f"{operation_id} {status}\n")


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
