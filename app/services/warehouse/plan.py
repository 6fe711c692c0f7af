"""The plan of the provisioning state machine: which step comes next, as a pure function.

    provisioning: cleanup? storage database role secret restore? tables probe
    deleting:     final-snapshot? drop-database drop-role cleanup? remove-storage destroy-secret

`next_step` reads only the warehouse row (and the environments whose tables are still to be
created); the machine (`machine.py`) takes the step, records it, and asks again.
"""

from __future__ import annotations

from typing import Any

from app.models import ManagedWarehouse, WarehouseState

S = WarehouseState

# Steps that act on the warehouse's cluster: one that succeeds shows the cluster is up.
CLUSTER_STEPS = frozenset(
    {"cleanup", "database", "role", "tables", "probe", "drop-database", "drop-role"}
)
# Steps that make or hand out credentials on the cluster: refused while it trusts logins.
GUARDED_STEPS = frozenset({"database", "role", "tables", "probe"})

SUB_STATE_OF = {
    "storage": "s3_state",
    "database": "metadata_store_state",
    "role": "identity_state",
    "secret": "secrets_state",
    "remove-storage": "s3_state",
    "restore": "metadata_store_state",
    "drop-database": "metadata_store_state",
    "drop-role": "identity_state",
    "destroy-secret": "secrets_state",
}
LABELS = {
    "cleanup": "Removing leftovers of an earlier attempt",
    "storage": "Creating storage",
    "database": "Creating the database",
    "role": "Creating the login role",
    "secret": "Storing the encrypted root password",
    "restore": "Restoring the snapshot",
    "final-snapshot": "Taking the final snapshot",
    "tables": "Creating the environments' tables",
    "probe": "Checking that the login works",
    "drop-database": "Dropping the database",
    "drop-role": "Dropping the login role",
    "remove-storage": "Removing storage",
    "destroy-secret": "Destroying the stored password",
}


def next_step(wh: ManagedWarehouse, tables: tuple[Any, ...]) -> str | None:
    if wh.state == S.DELETING:
        plan = [
            ("final-snapshot", wh.final_snapshot_id is not None),
            ("drop-database", wh.metadata_store_state != S.DELETED),
            ("drop-role", wh.identity_state != S.DELETED),
            ("cleanup", bool(wh.stale_names)),
            ("remove-storage", wh.s3_state != S.DELETED),
            ("destroy-secret", wh.secrets_state != S.DELETED),
        ]
    else:
        plan = [
            ("cleanup", bool(wh.stale_names)),
            ("storage", wh.s3_state != S.READY),
            ("database", wh.metadata_store_state != S.READY),
            ("role", wh.identity_state != S.READY),
            ("secret", wh.secrets_state != S.READY),
            ("restore", wh.restore_snapshot_id is not None),
            ("tables", bool(tables)),
            ("probe", True),
        ]
    return next((name for name, needed in plan if needed), None)
