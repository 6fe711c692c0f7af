"""`GET /metrics`: Prometheus text for operators, behind the internal token (API.md §10)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.core.errors import ErrorBody
from app.pipeline.auth import InternalCaller
from app.pipeline.metrics import HttpMetrics, database_gauges
from app.pipeline.observability import flush_pending

router = APIRouter(tags=["internal"])


@router.get(
    "/metrics",
    dependencies=[InternalCaller],
    response_class=Response,
    summary="Prometheus metrics of every API process, and gauges read from the database",
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        401: {"model": ErrorBody, "description": "No or a wrong internal token"},
    },
)
async def metrics(request: Request) -> Response:
    state = request.app.state
    flush_pending()  # this process's figures of the last instants (others lag <= 0.1 s)
    http: HttpMetrics = state.http_metrics
    gauges = await database_gauges(state.engine)
    return Response(http.render(gauges), media_type=CONTENT_TYPE_LATEST)
