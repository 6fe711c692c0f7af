"""`bench/load.py --observability`: the request pipeline's cost on warehouse_status.

Two more servers of the same app under the same uvicorn settings, both logging as `warehouse
serve` does (LOG_FORMAT=json at INFO, to a file) with prometheus-client in multiprocess mode:
`pipeline_on` is the app as shipped (request id, body limits, access line, metrics:
app/pipeline/observability.py), `pipeline_off` the same app with that middleware left out.
Both are driven in the same rounds as every other target; the report gives the ratio of their
req/s (median of the per-round ratios).
"""

from __future__ import annotations

import statistics

from fastapi import FastAPI

from app.core.logging import configure_logging
from app.main import create_app
from app.settings import Settings

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
