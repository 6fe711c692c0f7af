"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from app.core.errors import ErrorBody, ServiceUnavailable

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=HealthOut,
    responses={503: {"model": ErrorBody, "description": "A dependency does not answer"}},
)
async def readyz(request: Request) -> Any:
    state = request.app.state
    try:
        async with asyncio.timeout(3):
            async with state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:
        return _unavailable("The service database does not answer.")
    try:
        async with asyncio.timeout(3):
            await state.redis.ping()
    except Exception:
        return _unavailable("Redis does not answer.")
    problem = getattr(state, "readiness_problem", None)
    if problem:
        return _unavailable(problem)
    return HealthOut(status="ok")


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse(status_code=503, content=ServiceUnavailable(detail).body())
