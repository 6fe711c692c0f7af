"""`bench/load.py --observability`: the request pipeline's cost on warehouse_status.

Two more servers of the same app under the same uvicorn settings, both logging as `warehouse
serve` does (LOG_FORMAT=json at INFO; stderr to /dev/null, so every line is formatted and
written but no disk is involved) with prometheus-client in multiprocess mode:
`pipeline_on` is the app as shipped (request id, body limits, access line, metrics:
app/pipeline/observability.py), `pipeline_off` the same app with that middleware left out.
Both are driven in the same rounds as every other target; the report gives the ratio of their
req/s (median of the per-round ratios).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import statistics
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from app.core.logging import configure_logging
from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FACTORIES = {
    "pipeline_on": "bench.observability:pipeline_on",
    "pipeline_off": "bench.observability:pipeline_off",
}


def pipeline_on() -> FastAPI:
    settings = Settings()
    configure_logging("INFO", "json")
    return create_app(settings)


def pipeline_off() -> FastAPI:
    settings = Settings()
    configure_logging("INFO", "json")
    app = create_app(settings)
    # FastAPI's own stack, without the RequestPipeline that ObservedApp wraps around it.
    app.build_middleware_stack = lambda: FastAPI.build_middleware_stack(app)  # type: ignore[method-assign]
    return app


def report(runs: dict[str, list[dict[str, float]]], levels: list[int]) -> dict[str, float]:
    out = {}
    for level in levels:
        on, off = runs.get(f"pipeline_on@{level}"), runs.get(f"pipeline_off@{level}")
        if not on or not off:
            continue
        ratio = statistics.median(a["rps"] / b["rps"] for a, b in zip(on, off, strict=True))
        out[f"pipeline_on_vs_off@{level}"] = ratio
        print(
            f"warehouse_status@{level}: request pipeline on {statistics.median(a['rps'] for a in on):.0f}"
            f" req/s, off {statistics.median(b['rps'] for b in off):.0f} req/s: on/off = {ratio:.1%}"
            f" (cost {1 - ratio:+.1%})"
        )
    return out


CPU_ROUNDS = 10
CPU_REQUESTS = 300


def cpu_per_request(env: dict[str, str], path: str, keys_file: str) -> dict[str, float]:
    """CPU time per request of both apps in one process, called straight over ASGI with no
    server or client in the way, alternating rounds: a figure a busy machine disturbs far
    less than req/s. Runs in a child process with the service's settings."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "bench.observability", path, keys_file],
        env={**env, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp()},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.observability failed: {done.stderr[-3000:]}")
    out = done.stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    print(
        f"warehouse_status CPU per request (in process, median of {CPU_ROUNDS} rounds of "
        f"{CPU_REQUESTS}): pipeline on {result['on_us']:.0f} us, off {result['off_us']:.0f} us:"
        f" cost {result['on_us'] / result['off_us'] - 1:+.1%}"
    )
    return result


async def _cpu_main(path: str, keys_file: str) -> dict[str, float]:
    import asyncio
    import logging
    import os
    import time

    apps = {"on": pipeline_on(), "off": pipeline_off()}
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
    # Every request presents the next key, as in the wrk runs (one key would be throttled).
    keys = itertools.cycle(
        [(b"authorization", f"Bearer {k}".encode()) for k in Path(keys_file).read_text().split()]
    )

    async def call(app: FastAPI) -> None:
        headers = [(b"host", b"bench"), next(keys)]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("bench", 80),
            "state": {},
        }
        statuses: list[int] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(int(message["status"]))

        await app(scope, receive, send)
        if statuses != [200]:
            raise RuntimeError(f"warehouse_status answered {statuses}")

    rounds: dict[str, list[float]] = {"on": [], "off": []}
    async with contextlib.AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
            for _ in range(100):
                await call(app)
        for _ in range(CPU_ROUNDS):
            for name, app in apps.items():
                started = time.process_time()
                for _ in range(CPU_REQUESTS):
                    await call(app)
                await asyncio.sleep(0.15)  # the batched access lines and figures are written
                rounds[name].append((time.process_time() - started) / CPU_REQUESTS * 1e6)
    return {
        "on_us": statistics.median(rounds["on"]),
        "off_us": statistics.median(rounds["off"]),
    }


if __name__ == "__main__":
    import asyncio
    import sys

    print(json.dumps(asyncio.run(_cpu_main(sys.argv[1], sys.argv[2]))))
