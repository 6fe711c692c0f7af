"""Writing the audit trail. Callers pass states and ids only; there is no field for secrets."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuditLog


class AuditService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def record(
        self,
        *,
        organization_id: uuid.UUID,
        warehouse_id: uuid.UUID | None,
        action: str,
        from_state: str | None,
        to_state: str | None,
        actor_user_id: int | None = None,
        actor_key_id: uuid.UUID | None = None,
        detail: str = "",
    ) -> None:
        self.session.add(
            AuditLog(
                organization_id=organization_id,
                warehouse_id=warehouse_id,
                actor_user_id=actor_user_id,
                actor_key_id=actor_key_id,
                action=action,
                from_state=from_state,
                to_state=to_state,
                detail=detail,
            )
        )
