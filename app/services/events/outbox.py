"""Writing webhook events into the outbox, in the transaction of the change that causes them.

`emit_event` adds the event and one pending delivery per endpoint that is registered (and
subscribed to the type) at that moment. It only executes statements in the caller's session: the
caller's commit publishes the event together with the change, a rollback drops both. The worker
(`app/services/events/delivery.py`) sends what is due.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

EVENT_TYPES: tuple[str, ...] = (
    "warehouse.ready",
    "warehouse.failed",
    "warehouse.deleted",
    "warehouse.migrated",
    "warehouse.password_reset",
    "snapshot.ready",
    "snapshot.failed",
    "cluster.drained",
)
_DATA_KEYS = ("org_id", "operation_id", "state", "cluster", "snapshot_id")
# One round trip: the event, and a delivery per live endpoint subscribed to its type; no
# endpoint, no event.
_WRITE = text(
    """
    WITH endpoints AS (
        SELECT id FROM webhook_endpoints WHERE deleted_at IS NULL AND :type = ANY(events)
    ), event AS (
        INSERT INTO webhook_events (id, type, payload)
        SELECT :id, :type, CAST(:payload AS jsonb) WHERE EXISTS (SELECT 1 FROM endpoints)
        RETURNING id
    )
    INSERT INTO webhook_deliveries (event_id, endpoint_id)
    SELECT event.id, endpoints.id FROM event, endpoints
    """
)


def new_event_id() -> str:
    """The `webhook-id` of a new event."""
    return "msg_" + uuid.uuid4().hex


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): keys in a fixed order, whatever storage did to them."""
    data = payload["data"]
    ordered = {
        "type": payload["type"],
        "timestamp": payload["timestamp"],
        "data": {key: data[key] for key in _DATA_KEYS if key in data},
    }
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()


def build_payload(
    type: str,
    *,
    at: datetime,
    org_id: uuid.UUID | str | None,
    operation_id: uuid.UUID | str | None = None,
    state: str | None = None,
    cluster: str | None = None,
    snapshot_id: uuid.UUID | str | None = None,
) -> dict[str, Any]:
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    data: dict[str, str]
    if type == "cluster.drained":
        if not cluster:
            raise ValueError("cluster.drained needs a cluster")
        data = {"cluster": cluster}
    else:
        if org_id is None:
            raise ValueError(f"{type} needs an org_id")
        values = {
            "org_id": org_id,
            "operation_id": operation_id,
            "state": state,
            "cluster": cluster,
            "snapshot_id": snapshot_id,
        }
        data = {key: str(value) for key, value in values.items() if value is not None}
    return {"type": type, "timestamp": _timestamp(at), "data": data}


async def emit_event(
    session: AsyncSession,
    type: str,
    *,
    org_id: uuid.UUID | str | None = None,
    operation_id: uuid.UUID | str | None = None,
    state: str | None = None,
    cluster: str | None = None,
    snapshot_id: uuid.UUID | str | None = None,
) -> None:
    """Write one event for every endpoint subscribed to `type` now (no endpoint: nothing).

    `org_id` is required except for `cluster.drained`, whose data is `{cluster}` only. Never
    commits; never carries a password (there is no field for one).
    """
    payload = build_payload(
        type,
        at=datetime.now(UTC),
        org_id=org_id,
        operation_id=operation_id,
        state=state,
        cluster=cluster,
        snapshot_id=snapshot_id,
    )
    await session.execute(
        _WRITE, {"id": new_event_id(), "type": type, "payload": json.dumps(payload)}
    )
