"""Starting, finding and finishing operations, always inside the caller's transaction.

An operation is written in the same transaction as the change it stands for (`start`), and
finished in the same transaction as the state change that reaches or abandons its goal
(`finish_running`, called by the state machine). Nothing here commits: the request's session
dependency or the worker's step transaction does.

Refusals that name a running operation (`... (operation <uuid> is running)`) come from
`refuse_if_running` / `conflict`, so every action words them the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict
from app.models import Operation, OperationAction, OperationStatus

A = OperationAction
# Operations that keep the warehouse busy: a credential change or snapshot must wait for them.
BUSY_ACTIONS: tuple[str, ...] = (A.PROVISION, A.RESTORE, A.MOVE, A.SNAPSHOT, A.DEPROVISION)
MAX_PAGE = 100


@dataclass(frozen=True)
class OperationPage:
    results: list[Operation]
    has_next: bool


def running_suffix(operation_id: uuid.UUID) -> str:
    return f"(operation {operation_id} is running)"


def now() -> datetime:
    return datetime.now(UTC)


class OperationsService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- writing ----------------------------------------------------------------------------

    async def start(
        self,
        *,
        organization_id: uuid.UUID,
        warehouse_id: uuid.UUID | None,
        action: OperationAction,
    ) -> Operation:
        operation = Operation(
            id=uuid.uuid4(),
            organization_id=organization_id,
            warehouse_id=warehouse_id,
            action=action.value,
            status=OperationStatus.RUNNING.value,
        )
        self.session.add(operation)
        await self.session.flush()
        return operation

    def finish(self, operation: Operation, *, error: str | None = None) -> None:
        """`succeeded` without an error, `failed` with one (a credential-safe sentence)."""
        operation.status = OperationStatus.FAILED if error else OperationStatus.SUCCEEDED
        operation.error = error
        operation.finished_at = now()
        operation.updated_at = operation.finished_at

    async def finish_running(
        self,
        warehouse_id: uuid.UUID,
        actions: Collection[str],
        *,
        error: str | None = None,
    ) -> list[Operation]:
        """Finish every running operation of these kinds on the warehouse (row-locked)."""
        rows = await self.session.scalars(
            select(Operation)
            .where(
                Operation.warehouse_id == warehouse_id,
                Operation.status == OperationStatus.RUNNING,
                Operation.action.in_(list(actions)),
            )
            .with_for_update()
        )
        finished = list(rows)
        for operation in finished:
            self.finish(operation, error=error)
        await self.session.flush()
        return finished

    # -- reading ----------------------------------------------------------------------------

    async def running(
        self, organization_id: uuid.UUID, actions: Collection[str] = BUSY_ACTIONS
    ) -> Operation | None:
        """The organization's running operation of one of these kinds (the newest), or None."""
        result: Operation | None = await self.session.scalar(
            select(Operation)
            .where(
                Operation.organization_id == organization_id,
                Operation.status == OperationStatus.RUNNING,
                Operation.action.in_(list(actions)),
            )
            .order_by(Operation.created_at.desc(), Operation.id.desc())
            .limit(1)
        )
        return result

    async def latest(
        self,
        warehouse_id: uuid.UUID,
        action: OperationAction,
        status: OperationStatus | None = None,
    ) -> Operation | None:
        stmt = select(Operation).where(
            Operation.warehouse_id == warehouse_id, Operation.action == action
        )
        if status is not None:
            stmt = stmt.where(Operation.status == status)
        result: Operation | None = await self.session.scalar(
            stmt.order_by(Operation.created_at.desc(), Operation.id.desc()).limit(1)
        )
        return result

    async def get(self, organization_id: uuid.UUID, operation_id: uuid.UUID) -> Operation | None:
        result: Operation | None = await self.session.scalar(
            select(Operation).where(
                Operation.id == operation_id, Operation.organization_id == organization_id
            )
        )
        return result

    async def page(self, organization_id: uuid.UUID, *, limit: int, offset: int) -> OperationPage:
        rows = list(
            await self.session.scalars(
                select(Operation)
                .where(Operation.organization_id == organization_id)
                .order_by(Operation.created_at.desc(), Operation.id.desc())
                .limit(limit + 1)
                .offset(offset)
            )
        )
        return OperationPage(results=rows[:limit], has_next=len(rows) > limit)

    async def count_running(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(Operation.action, func.count())
            .where(Operation.status == OperationStatus.RUNNING)
            .group_by(Operation.action)
        )
        return {action: int(n) for action, n in rows.all()}

    # -- refusals ---------------------------------------------------------------------------

    async def conflict(
        self,
        organization_id: uuid.UUID,
        message: str,
        actions: Collection[str] = BUSY_ACTIONS,
    ) -> Conflict:
        """A 409 with `message`, naming the running operation when one of `actions` runs."""
        running = await self.running(organization_id, actions)
        if running is None:
            return Conflict(message)
        return Conflict(f"{message} {running_suffix(running.id)}")

    async def refuse_if_running(
        self,
        organization_id: uuid.UUID,
        message: str,
        actions: Collection[str] = BUSY_ACTIONS,
    ) -> None:
        """Raise a 409 `<message> (operation <uuid> is running)` when one of `actions` runs."""
        running = await self.running(organization_id, actions)
        if running is not None:
            raise Conflict(f"{message} {running_suffix(running.id)}")
