"""Internal webhooks API (API.md §10): register, list and delete endpoints; the deliveries log."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import (
    APIRouter,
    Query,
    Request,
    Response,
)

from app.core.errors import ErrorBody, ValidationFailed
from app.pipeline.auth import InternalCaller
from app.pipeline.json_body import DecodedBodyRoute
from app.pipeline.sessions import DbSession
from app.schemas.webhooks import (
    DeliveryList,
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
)
from app.services.events.endpoints import WebhookEndpoints

router = APIRouter(
    prefix="/internal",
    tags=["internal"],
    dependencies=[InternalCaller],
    route_class=DecodedBodyRoute,
)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_INT = re.compile(r"[+-]?\d+")
_404: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "Unknown or deleted webhook"}
}
_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody},
    401: {"model": ErrorBody},
}


def _limit(raw: str | None) -> int:
    """Default 20, capped at 100 (an integer of any size is an integer), below 1 -> 400."""
    if raw is None:
        return DEFAULT_LIMIT
    text = raw.strip()
    if not _INT.fullmatch(text):
        raise ValidationFailed("limit must be an integer", attr="limit")
    digits = text.lstrip("+-").lstrip("0")
    if text.startswith("-") or not digits:
        raise ValidationFailed("limit must be at least 1", attr="limit")
    if len(digits) > 6:
        return MAX_LIMIT
    return min(int(digits), MAX_LIMIT)


def _endpoints(session: DbSession, request: Request) -> WebhookEndpoints:
    settings = request.app.state.settings
    return WebhookEndpoints(session, settings.secret_key.get_secret_value())


def _out(endpoint: object) -> WebhookOut:
    return WebhookOut.model_validate(endpoint, from_attributes=True)


@router.post("/webhooks", status_code=201, response_model=WebhookCreated, responses=_ERRORS)
async def create_webhook(
    body: WebhookCreate, session: DbSession, request: Request
) -> WebhookCreated:
    registered = await _endpoints(session, request).register(body.url, body.events, body.secret)
    endpoint = registered.endpoint
    return WebhookCreated(
        id=endpoint.id, url=endpoint.url, events=endpoint.events, secret=registered.secret
    )


@router.get("/webhooks", response_model=WebhookList, responses={401: {"model": ErrorBody}})
async def list_webhooks(session: DbSession, request: Request) -> WebhookList:
    return WebhookList(results=[_out(e) for e in await _endpoints(session, request).live()])


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    response_class=Response,
    responses={401: {"model": ErrorBody}, **_404},
)
async def delete_webhook(webhook_id: str, session: DbSession, request: Request) -> Response:
    await _endpoints(session, request).delete(webhook_id)
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryList,
    responses={**_ERRORS, **_404},
)
async def list_deliveries(
    webhook_id: str,
    session: DbSession,
    request: Request,
    limit: Annotated[str | None, Query(max_length=100)] = None,
) -> DeliveryList:
    endpoints = _endpoints(session, request)
    endpoint_id = await endpoints.live_id(webhook_id)  # 404 before 400 (API.md §3)
    rows = await endpoints.attempts(endpoint_id, _limit(limit))
    return DeliveryList(results=[DeliveryOut.model_validate(r, from_attributes=True) for r in rows])
