"""Sending webhook deliveries (API.md §10): claim what is due, POST it signed, record the attempt.

State lives in the service database only, so a worker may die at any point without losing an
event (at least once):

1. Claim: one transaction takes due rows `FOR UPDATE SKIP LOCKED` (so several workers share the
   work) and pushes their `next_attempt_at` out by a lease, then commits. A worker that dies
   after this leaves the rows to be claimed again once the lease has passed.
2. Send: POST the event's body with the Standard Webhooks headers (`standardwebhooks` signs),
   10 s per attempt, many attempts at once.
3. Record: one transaction per batch of ended attempts moves each delivery on (`attempt`, the
   next time from `WEBHOOK_RETRY_SCHEDULE`, or `done`) and writes one log row per attempt. The
   update only applies to a delivery still at the attempt it was claimed at, so a takeover after
   an expired lease never logs the same attempt twice.

Nothing here logs a secret or a URL (a URL may carry a token); log lines name ids only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from app.core.crypto import InvalidToken
from app.models import WebhookDeliveryAttempt
from app.services.events.endpoints import secret_box
from app.services.events.outbox import event_body

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.25
# At most this many attempts at once (httpcore's pool scans every connection per request, so a
# larger pool costs more CPU than it gains); claims wait until a quarter of the room is free.
MAX_IN_FLIGHT = 32
CLAIM_BATCH = 32
MIN_CLAIM = 8
SHARDS = 4
# On shutdown, attempts still in flight after this are abandoned (their lease brings them back).
SHUTDOWN_GRACE_SECONDS = 3.0
FAILURE_PAUSE_SECONDS = 2.0
USER_AGENT = "warehouse-api-webhooks"

_CLAIM = text(
    """
    WITH due AS (
        SELECT id FROM webhook_deliveries
        WHERE NOT done AND next_attempt_at <= clock_timestamp()
        ORDER BY next_attempt_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE webhook_deliveries d
    SET next_attempt_at = clock_timestamp() + make_interval(secs => :lease)
    FROM due, webhook_events e, webhook_endpoints ep
    WHERE d.id = due.id AND e.id = d.event_id AND ep.id = d.endpoint_id
    RETURNING d.id, d.attempt, d.event_id, d.endpoint_id, e.type, e.payload, ep.url,
              ep.secret_ciphertext, ep.deleted_at IS NOT NULL AS endpoint_deleted
    """
)
_DROP = text("UPDATE webhook_deliveries SET done = true WHERE id = ANY(CAST(:ids AS bigint[]))")
_ADVANCE = text(
    """
    WITH r AS (
        SELECT * FROM unnest(
            CAST(:ids AS bigint[]), CAST(:attempts AS integer[]),
            CAST(:nexts AS timestamptz[]), CAST(:dones AS boolean[])
        ) AS r(id, attempt, next_at, done)
    )
    UPDATE webhook_deliveries d
    SET attempt = r.attempt, next_attempt_at = COALESCE(r.next_at, d.next_attempt_at),
        done = r.done
    FROM r
    WHERE d.id = r.id AND d.attempt = r.attempt - 1 AND NOT d.done
    RETURNING d.id
    """
)


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    attempt: int  # the number of this attempt, from 1
    event_id: str
    type: str
    body: bytes
    endpoint_id: uuid.UUID
    url: str
    signer: Webhook


@dataclass(frozen=True)
class Ended:
    claimed: Claimed
    status_code: int | None
    error: str | None
    at: datetime

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Clients:
    """The worker's HTTP clients, built once at start-up: a few small pools, not one big one.

    httpcore scans every connection of a pool on each request and each response: with one pool
    of `MAX_IN_FLIGHT` connections a delivery cost about half as much CPU again as with `SHARDS`
    pools of a quarter of the size (bench/webhooks.py). An attempt takes the least busy client; as
    attempts in flight never exceed the total size, it never queues for a connection. No
    redirects are followed.
    """

    def __init__(self, shards: int = SHARDS, size: int = MAX_IN_FLIGHT // SHARDS) -> None:
        self._clients = [
            httpx.AsyncClient(
                timeout=httpx.Timeout(TIMEOUT_SECONDS),
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                follow_redirects=False,
                headers={"user-agent": USER_AGENT},
            )
            for _ in range(shards)
        ]
        self._busy = [0] * shards

    async def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> int:
        """POST and return the status code (the body is read and dropped)."""
        i = min(range(len(self._clients)), key=self._busy.__getitem__)
        self._busy[i] += 1
        try:
            response = await self._clients[i].post(url, content=content, headers=headers)
            return response.status_code
        finally:
            self._busy[i] -= 1

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def describe_failure(exc: Exception) -> str:
    """A fixed, credential-safe sentence for an attempt that got no answer."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return f"No answer within {TIMEOUT_SECONDS:g} s"
    if isinstance(exc, httpx.ConnectError):
        return "Could not connect to the endpoint"
    if isinstance(exc, httpx.HTTPError):
        return f"The request failed ({type(exc).__name__})"
    return f"The attempt failed ({type(exc).__name__})"


class WebhookSender:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clients: Clients,
        *,
        secret_key: str,
        retry_delays: tuple[float, ...],
        lease_seconds: float,
        poll_seconds: float = POLL_SECONDS,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clients = clients
        self.box = secret_box(secret_key)
        self.retry_delays = retry_delays
        self.lease_seconds = max(lease_seconds, 1.0)
        self.poll_seconds = poll_seconds
        self.max_in_flight = max_in_flight
        self._signers: dict[uuid.UUID, Webhook] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._ended: list[Ended] = []
        self._ended_signal = asyncio.Event()
        self._stopping = False

    # -- claiming ---------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Claimed]:
        async with self.sessionmaker() as session, session.begin():
            rows = (
                await session.execute(_CLAIM, {"limit": limit, "lease": self.lease_seconds})
            ).all()
            dropped = [r.id for r in rows if r.endpoint_deleted]
            if dropped:  # the endpoint was deleted: its pending deliveries are not sent
                await session.execute(_DROP, {"ids": dropped})
        claimed = []
        for r in rows:
            if r.endpoint_deleted:
                continue
            signer = self._signer(r.endpoint_id, r.secret_ciphertext)
            if signer is None:
                continue  # unreadable with this SECRET_KEY: left for its lease, logged once
            claimed.append(
                Claimed(
                    delivery_id=r.id,
                    attempt=r.attempt + 1,
                    event_id=r.event_id,
                    type=r.type,
                    body=event_body(r.payload),
                    endpoint_id=r.endpoint_id,
                    url=r.url,
                    signer=signer,
                )
            )
        return claimed

    def _signer(self, endpoint_id: uuid.UUID, ciphertext: bytes) -> Webhook | None:
        signer = self._signers.get(endpoint_id)
        if signer is None:
            try:
                secret = self.box.decrypt(ciphertext).decode()
            except InvalidToken:
                logger.error(
                    "webhook secret unreadable with the configured SECRET_KEY",
                    extra={"endpoint_id": str(endpoint_id)},
                )
                return None
            signer = self._signers[endpoint_id] = Webhook(secret)
        return signer

    # -- sending ----------------------------------------------------------------------------

    def headers(self, claimed: Claimed, at: datetime) -> dict[str, str]:
        body = claimed.body.decode()
        return {
            "content-type": "application/json",
            "webhook-id": claimed.event_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": claimed.signer.sign(claimed.event_id, at, body),
        }

    async def send(self, claimed: Claimed) -> Ended:
        started = datetime.now(UTC)
        status_code: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                status_code = await self.clients.post(
                    claimed.url, content=claimed.body, headers=self.headers(claimed, started)
                )
            if not 200 <= status_code < 300:
                error = f"The endpoint answered {status_code}"
        except Exception as exc:
            error = describe_failure(exc)
        return Ended(claimed, status_code, error, datetime.now(UTC))

    async def _attempt(self, claimed: Claimed) -> None:
        ended = await self.send(claimed)
        self._ended.append(ended)
        self._ended_signal.set()

    # -- recording --------------------------------------------------------------------------

    def _next_attempt_at(self, ended: Ended) -> datetime | None:
        n = ended.claimed.attempt
        if ended.ok or n > len(self.retry_delays):
            return None
        return ended.at + timedelta(seconds=self.retry_delays[n - 1])

    async def record(self, batch: list[Ended]) -> None:
        nexts = [self._next_attempt_at(e) for e in batch]
        async with self.sessionmaker() as session, session.begin():
            advanced = set(
                (
                    await session.scalars(
                        _ADVANCE,
                        {
                            "ids": [e.claimed.delivery_id for e in batch],
                            "attempts": [e.claimed.attempt for e in batch],
                            "nexts": nexts,
                            "dones": [n is None for n in nexts],
                        },
                    )
                ).all()
            )
            rows: list[dict[str, Any]] = [
                {
                    "event_id": e.claimed.event_id,
                    "endpoint_id": e.claimed.endpoint_id,
                    "type": e.claimed.type,
                    "attempt": e.claimed.attempt,
                    "status_code": e.status_code,
                    "error": e.error,
                    "delivered_at": e.at if e.ok else None,
                    "next_attempt_at": next_at,
                    "created_at": e.at,
                }
                for e, next_at in zip(batch, nexts, strict=True)
                if e.claimed.delivery_id in advanced
            ]
            if rows:
                await session.execute(insert(WebhookDeliveryAttempt).values(rows))

    async def _record_loop(self) -> None:
        while not self._stopping:
            await self._ended_signal.wait()
            self._ended_signal.clear()
            await self._flush()

    async def _flush(self, *, retry: bool = True) -> None:
        batch, self._ended = self._ended, []
        if not batch:
            return
        try:
            await self.record(batch)
        except Exception as exc:
            if not retry:
                logger.warning(
                    "recording webhook attempts failed; they will be sent again",
                    extra={"error_class": type(exc).__name__},
                )
                return
            # The service database hiccuped: keep the results and try again shortly. If the
            # leases pass first, the deliveries are sent again (at least once).
            logger.warning(
                "recording webhook attempts failed", extra={"error_class": type(exc).__name__}
            )
            self._ended = batch + self._ended
            await asyncio.sleep(FAILURE_PAUSE_SECONDS)
            self._ended_signal.set()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and send until cancelled. Cancelled, it stops claiming, lets the attempts in
        flight end (a few seconds at most), records them and closes the HTTP clients."""
        recorder = asyncio.create_task(self._record_loop())
        try:
            await self._claim_loop()
        finally:
            if self._in_flight:
                await asyncio.wait(set(self._in_flight), timeout=SHUTDOWN_GRACE_SECONDS)
            for task in set(self._in_flight):
                task.cancel()
            # Let the recorder finish what it is writing (cancelling it would lose a batch).
            self._stopping = True
            self._ended_signal.set()
            await asyncio.wait({recorder}, timeout=TIMEOUT_SECONDS)
            recorder.cancel()
            await self._flush(retry=False)
            await self.clients.aclose()

    async def _claim_loop(self) -> None:
        while True:
            room = min(CLAIM_BATCH, self.max_in_flight - len(self._in_flight))
            claimed: list[Claimed] = []
            if room >= MIN_CLAIM or (room > 0 and not self._in_flight):
                try:
                    claimed = await self.claim(room)
                except Exception as exc:
                    # The service database is away: say so, and ask again in a while.
                    logger.warning(
                        "claiming webhook deliveries failed",
                        extra={"error_class": type(exc).__name__},
                    )
                    await asyncio.sleep(FAILURE_PAUSE_SECONDS)
            for c in claimed:
                task = asyncio.create_task(self._attempt(c))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if claimed and len(claimed) == room:
                continue  # probably more due right now
            if room < MIN_CLAIM and self._in_flight:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(self.poll_seconds)
