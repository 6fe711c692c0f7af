"""The provisioning state machine's next step, as a pure function of the warehouse row.

No database: a transient row in each state. The order is the contract of the state machine
(DESIGN.md): storage -> database -> login role -> secret -> tables -> probe when provisioning,
leftovers of a failed attempt first; teardown drops the database before the role.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.models import ManagedWarehouse, WarehouseState
from app.services.warehouse.plan import next_step as plan_next_step

S = WarehouseState
SUBS = ("s3_state", "metadata_store_state", "identity_state", "secrets_state")


def row(state: str, sub: str = S.PENDING, **fields: Any) -> ManagedWarehouse:
    wh = ManagedWarehouse(
        id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        database_name="acme",
        login_role="acme",
        state=state,
        stale_names=[],
        final_snapshot_id=None,
        restore_snapshot_id=None,
        **{name: sub for name in SUBS},
    )
    for name, value in fields.items():
        setattr(wh, name, value)
    return wh


def next_step(wh: ManagedWarehouse, tables: tuple[Any, ...] = ()) -> str | None:
    return plan_next_step(wh, tables)


def test_a_new_warehouse_starts_with_its_storage() -> None:
    assert next_step(row(S.PROVISIONING)) == "storage"


@pytest.mark.parametrize(
    ("ready", "expected"),
    [
        ((), "storage"),
        (("s3_state",), "database"),
        (("s3_state", "metadata_store_state"), "role"),
        (("s3_state", "metadata_store_state", "identity_state"), "secret"),
        (SUBS, "probe"),
    ],
)
def test_provisioning_steps_follow_in_order(ready: tuple[str, ...], expected: str) -> None:
    wh = row(S.PROVISIONING, **{name: S.READY for name in ready})
    assert next_step(wh) == expected


def test_tables_come_before_the_probe() -> None:
    wh = row(S.PROVISIONING, S.READY)
    assert next_step(wh, tables=((1, "main", None),)) == "tables"
    assert next_step(wh) == "probe"


def test_leftovers_of_an_earlier_attempt_are_removed_first() -> None:
    wh = row(S.PROVISIONING, stale_names=["old-name"])
    assert next_step(wh) == "cleanup"


def test_teardown_drops_the_database_before_the_role() -> None:
    wh = row(S.DELETING, S.READY)
    assert next_step(wh) == "drop-database"
    wh.metadata_store_state = S.DELETED
    assert next_step(wh) == "drop-role"
    wh.identity_state = S.DELETED
    assert next_step(wh) == "remove-storage"


def test_teardown_ends_when_everything_is_deleted() -> None:
    wh = row(S.DELETING, S.DELETED)
    assert next_step(wh) is None


def test_a_restore_loads_the_snapshot_after_the_secret_and_before_the_tables() -> None:
    wh = row(S.PROVISIONING, S.READY, restore_snapshot_id=uuid.uuid4())
    assert next_step(wh, tables=((1, "main", None),)) == "restore"


def test_a_final_snapshot_comes_before_anything_is_dropped() -> None:
    wh = row(S.DELETING, S.READY, final_snapshot_id=uuid.uuid4())
    assert next_step(wh) == "final-snapshot"
