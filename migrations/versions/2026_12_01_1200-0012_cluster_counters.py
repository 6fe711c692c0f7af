"""cluster counters: placement with a short critical section

`warehouse_clusters.warehouses` (warehouses on the cluster that are not `deleted`) and
`warehouse_clusters.incoming` (moves on their way to it, not yet switched) are kept exact by
triggers on `managed_warehouses` and `warehouse_moves`: every statement that puts a warehouse
on a cluster, takes it off, deletes it or moves it changes the counter in the same transaction,
whichever code path wrote it. The upgrade backfills both from the rows.

`warehouse_cluster_pick(excluded)` is the placement rule (API.md §8) in one statement: the
active, healthy cluster with room whose `(warehouses + incoming) / max_warehouses` is lowest,
ties by name, returned locked (FOR NO KEY UPDATE), so the room check is made on the row as it is
once locked. A new warehouse (`pending`, no cluster yet) is placed by a deferred constraint
trigger, i.e. inside COMMIT: the cluster row is locked only while the commit runs on the
server, never across a round trip to the client. No room: the commit fails with SQLSTATE
`WH503`, which the service answers as 503 `no_capacity`.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL = """
UPDATE warehouse_clusters c SET
    warehouses = (
        SELECT count(*) FROM managed_warehouses m
        WHERE m.cluster = c.name AND m.state <> 'deleted'
    ),
    incoming = (
        SELECT count(*) FROM warehouse_moves v
        WHERE v.target_cluster = c.name AND v.finished_at IS NULL AND NOT v.switched
    )
"""

# Two clusters' rows are always locked in name order, so two changes (a move switch each way)
# never wait on each other in a cycle.
_SHIFT = """
CREATE FUNCTION warehouse_clusters_shift(counter text, old_on text, new_on text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF old_on IS NOT DISTINCT FROM new_on THEN
        RETURN;
    END IF;
    IF old_on IS NOT NULL AND (new_on IS NULL OR old_on < new_on) THEN
        EXECUTE format('UPDATE warehouse_clusters SET %1$I = %1$I - 1 WHERE name = $1', counter)
            USING old_on;
        old_on := NULL;
    END IF;
    IF new_on IS NOT NULL THEN
        EXECUTE format('UPDATE warehouse_clusters SET %1$I = %1$I + 1 WHERE name = $1', counter)
            USING new_on;
    END IF;
    IF old_on IS NOT NULL THEN
        EXECUTE format('UPDATE warehouse_clusters SET %1$I = %1$I - 1 WHERE name = $1', counter)
            USING old_on;
    END IF;
END $$
"""

_COUNT_WAREHOUSES = """
CREATE FUNCTION warehouse_clusters_count_warehouses() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_on text;
    new_on text;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.cluster IS NOT NULL AND OLD.state <> 'deleted' THEN
        old_on := OLD.cluster;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.cluster IS NOT NULL AND NEW.state <> 'deleted' THEN
        new_on := NEW.cluster;
    END IF;
    PERFORM warehouse_clusters_shift('warehouses', old_on, new_on);
    RETURN NULL;
END $$
"""

_COUNT_INCOMING = """
CREATE FUNCTION warehouse_clusters_count_incoming() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_on text;
    new_on text;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.target_cluster IS NOT NULL AND OLD.finished_at IS NULL
            AND NOT OLD.switched THEN
        old_on := OLD.target_cluster;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.target_cluster IS NOT NULL AND NEW.finished_at IS NULL
            AND NOT NEW.switched THEN
        new_on := NEW.target_cluster;
    END IF;
    PERFORM warehouse_clusters_shift('incoming', old_on, new_on);
    RETURN NULL;
END $$
"""

# Clusters that are locked by a placement in flight are skipped first (another one with room
# serves this placement at once); only when every candidate is locked does it wait, and then
# the room is checked again on the locked row.
_PICK = """
CREATE FUNCTION warehouse_cluster_pick(excluded text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    chosen text;
BEGIN
    SELECT c.name INTO chosen FROM warehouse_clusters c
    WHERE c.state = 'active' AND c.healthy AND c.admin_url_ciphertext IS NOT NULL
        AND c.name IS DISTINCT FROM excluded
        AND c.warehouses + c.incoming < c.max_warehouses
    ORDER BY (c.warehouses + c.incoming)::numeric / c.max_warehouses, c.name
    LIMIT 1
    FOR NO KEY UPDATE SKIP LOCKED;
    IF chosen IS NULL THEN
        SELECT c.name INTO chosen FROM warehouse_clusters c
        WHERE c.state = 'active' AND c.healthy AND c.admin_url_ciphertext IS NOT NULL
            AND c.name IS DISTINCT FROM excluded
            AND c.warehouses + c.incoming < c.max_warehouses
        ORDER BY (c.warehouses + c.incoming)::numeric / c.max_warehouses, c.name
        LIMIT 1
        FOR NO KEY UPDATE;
    END IF;
    RETURN chosen;
END $$
"""

_PLACE = """
CREATE FUNCTION managed_warehouses_place() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chosen text;
BEGIN
    -- The event was queued by some write of this transaction; act on the row as it is now.
    PERFORM 1 FROM managed_warehouses
    WHERE id = NEW.id AND cluster IS NULL AND state = 'pending';
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    chosen := warehouse_cluster_pick(NULL);
    IF chosen IS NULL THEN
        RAISE EXCEPTION 'No warehouse cluster has room for a new warehouse'
            USING ERRCODE = 'WH503';
    END IF;
    UPDATE managed_warehouses SET cluster = chosen WHERE id = NEW.id;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.add_column(
        "warehouse_clusters",
        sa.Column("warehouses", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "warehouse_clusters",
        sa.Column("incoming", sa.Integer(), server_default="0", nullable=False),
    )
    # No placement or move may change the rows between the backfill and the triggers.
    op.execute("LOCK TABLE managed_warehouses, warehouse_moves IN SHARE ROW EXCLUSIVE MODE")
    op.execute(_BACKFILL)
    op.execute(_SHIFT)
    op.execute(_COUNT_WAREHOUSES)
    op.execute(_COUNT_INCOMING)
    op.execute(_PICK)
    op.execute(_PLACE)
    op.execute(
        "CREATE TRIGGER managed_warehouses_count AFTER INSERT OR DELETE OR UPDATE OF cluster, "
        "state ON managed_warehouses FOR EACH ROW "
        "EXECUTE FUNCTION warehouse_clusters_count_warehouses()"
    )
    op.execute(
        "CREATE TRIGGER warehouse_moves_count AFTER INSERT OR DELETE OR UPDATE OF "
        "target_cluster, finished_at, switched ON warehouse_moves FOR EACH ROW "
        "EXECUTE FUNCTION warehouse_clusters_count_incoming()"
    )
    op.execute(
        "CREATE CONSTRAINT TRIGGER managed_warehouses_place AFTER INSERT OR UPDATE OF "
        "cluster, state ON managed_warehouses DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
        "WHEN (NEW.cluster IS NULL AND NEW.state = 'pending') "
        "EXECUTE FUNCTION managed_warehouses_place()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER managed_warehouses_place ON managed_warehouses")
    op.execute("DROP TRIGGER warehouse_moves_count ON warehouse_moves")
    op.execute("DROP TRIGGER managed_warehouses_count ON managed_warehouses")
    op.execute("DROP FUNCTION managed_warehouses_place()")
    op.execute("DROP FUNCTION warehouse_cluster_pick(text)")
    op.execute("DROP FUNCTION warehouse_clusters_count_incoming()")
    op.execute("DROP FUNCTION warehouse_clusters_count_warehouses()")
    op.execute("DROP FUNCTION warehouse_clusters_shift(text, text, text)")
    op.drop_column("warehouse_clusters", "incoming")
    op.drop_column("warehouse_clusters", "warehouses")
