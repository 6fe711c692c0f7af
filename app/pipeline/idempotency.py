"""`Idempotency-Key` on public POST/DELETE actions (API.md §5).

The first response for (key, user, action, environment) is stored for 24 h, encrypted (it may
hold a password), and replayed byte-for-byte; the same key with another body -> 409; a duplicate
arriving while the first is still running -> 409. Claims and stored responses are written in
their own short transactions so concurrent duplicates see them at once. A claim whose request
died without answering (a killed process) is taken over by a retry after
`IDEMPOTENCY_STALE_CLAIM_SECONDS` (default 2 minutes); until then a retry answers 409.

Flow: the route's access guard calls `claim()` once the caller is authorised; the action route
class (`app.routers.data_warehouse.ActionRoute`) then stores the response, or releases the claim
when the request failed with a server error.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Request, Response
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.crypto import SecretBox
from app.core.errors import Conflict, ValidationFailed
from app.models import IdempotencyKey

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class ReplayStoredResponse(Exception):
    """Raised by the guard to answer with the stored first response."""

    def __init__(self, status: int, body: bytes, media_type: str) -> None:
        super().__init__("replay stored response")
        self.stored = Response(content=body, status_code=status, media_type=media_type)


@dataclass(frozen=True)
class Claim:
    row_id: int


def _request_hash(request: Request, body: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b"\0" + request.url.query.encode() + b"\0")
    digest.update(canonical)
    return digest.hexdigest()


def _box(request: Request) -> SecretBox:
    box: SecretBox | None = getattr(request.app.state, "idempotency_box", None)
    if box is None:
        secret = request.app.state.settings.secret_key.get_secret_value()
        box = SecretBox(secret, "idempotency-response")
        request.app.state.idempotency_box = box
    return box


def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


async def claim(request: Request, *, user_id: int, team_id: int, action: str) -> Claim | None:
    """Claim the request's Idempotency-Key, or raise to replay / refuse. None without a key."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise ValidationFailed(
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters", attr=HEADER
        )
    request_hash = _request_hash(request, await request.body())
    now = datetime.now(UTC)
    stale_claim = timedelta(seconds=request.app.state.settings.idempotency_stale_claim_seconds)
    identity = {"key": key, "user_id": user_id, "team_id": team_id, "action": action}
    async with _sessionmaker(request)() as session, session.begin():
        # Expired or abandoned claims make room for this request.
        await session.execute(
            delete(IdempotencyKey).where(
                *(getattr(IdempotencyKey, k) == v for k, v in identity.items()),
                (IdempotencyKey.expires_at < now)
                | (
                    IdempotencyKey.response_status.is_(None)
                    & (IdempotencyKey.created_at < now - stale_claim)
                ),
            )
        )
        row_id = (
            await session.execute(
                insert(IdempotencyKey)
                .values(**identity, request_hash=request_hash, expires_at=now + TTL)
                .on_conflict_do_nothing()
                .returning(IdempotencyKey.id)
            )
        ).scalar_one_or_none()
        if row_id is not None:
            return Claim(row_id)
        existing = (
            await session.execute(
                select(IdempotencyKey).where(
                    *(getattr(IdempotencyKey, k) == v for k, v in identity.items())
                )
            )
        ).scalar_one_or_none()
    if existing is None:  # removed between our insert and select: ask the client to retry
        raise Conflict(f"A request with this {HEADER} is in progress; retry shortly.")
    if existing.request_hash != request_hash:
        raise Conflict(f"This {HEADER} was already used with a different request.")
    if existing.response_status is None or existing.response_ciphertext is None:
        raise Conflict(f"A request with this {HEADER} is still in progress.")
    payload = json.loads(_box(request).decrypt(existing.response_ciphertext))
    raise ReplayStoredResponse(
        existing.response_status, payload["body"].encode("latin-1"), payload["media_type"]
    )


async def store(request: Request, claimed: Claim, response: Response) -> None:
    payload = json.dumps(
        {
            "body": bytes(response.body).decode("latin-1"),
            "media_type": response.media_type or "application/json",
        }
    ).encode()
    async with _sessionmaker(request)() as session, session.begin():
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == claimed.row_id)
            .values(
                response_status=response.status_code,
                response_ciphertext=_box(request).encrypt(payload),
            )
        )


async def release(request: Request, claimed: Claim) -> None:
    async with _sessionmaker(request)() as session, session.begin():
        await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == claimed.row_id))
