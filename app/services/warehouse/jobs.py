"""Names shared by the API (which enqueues) and the worker (which runs): no arq import here."""

from __future__ import annotations

import uuid

ADVANCE_WAREHOUSE = "advance_warehouse"
RECONCILE_WAREHOUSES = "reconcile_warehouses"


def advance_job_id(warehouse_id: uuid.UUID | str, generation: int) -> str:
    """One job per (warehouse, generation): duplicate sends of the same request collapse."""
    return f"warehouse:{warehouse_id}:{generation}"
