"""pipelines

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-26 12:01:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Row triggers keep pipeline_job_rollups and pipeline_daily_rows exact for every writer (see
# their models). OLD's contribution is removed and NEW's added; when the two fall in different
# buckets the earlier one is touched first, so two transactions never lock the same two rollup
# rows in opposite order.
ROLLUP_TRIGGERS = [
    """
    CREATE FUNCTION pipeline_rollup_add(
        p_team bigint, p_at timestamptz, p_kind text, p_source uuid, p_sign int,
        p_running boolean, p_successful boolean, p_failed boolean, p_rows bigint
    ) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        bucket timestamptz := to_timestamp(floor(extract(epoch FROM p_at) / 900) * 900);
        day timestamptz := to_timestamp(floor(extract(epoch FROM p_at) / 86400) * 86400);
    BEGIN
        IF p_sign < 0 THEN
            -- Removing a contribution only ever updates: the rows exist since the job was
            -- counted, and an environment being deleted (cascade) has none left to update.
            UPDATE pipeline_job_rollups SET
                jobs = jobs - 1,
                running = running - p_running::int,
                successful = successful - p_successful::int,
                failed = failed - p_failed::int
            WHERE team_id = p_team AND bucket_start = bucket AND kind = p_kind;
            UPDATE pipeline_daily_rows SET rows = rows - p_rows
            WHERE team_id = p_team AND day_start = day AND kind = p_kind
              AND source_id = p_source;
            RETURN;
        END IF;
        INSERT INTO pipeline_job_rollups AS r
            (team_id, bucket_start, kind, jobs, running, successful, failed)
        VALUES (p_team, bucket, p_kind, 1, p_running::int, p_successful::int, p_failed::int)
        ON CONFLICT (team_id, bucket_start, kind) DO UPDATE SET
            jobs = r.jobs + 1,
            running = r.running + EXCLUDED.running,
            successful = r.successful + EXCLUDED.successful,
            failed = r.failed + EXCLUDED.failed;
        INSERT INTO pipeline_daily_rows AS d (team_id, day_start, kind, source_id, rows)
        VALUES (p_team, day, p_kind, p_source, p_rows)
        ON CONFLICT (team_id, day_start, kind, source_id) DO UPDATE SET
            rows = d.rows + EXCLUDED.rows;
    END $$
    """,
    """
    CREATE FUNCTION external_data_jobs_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        has_old boolean := TG_OP <> 'INSERT' AND OLD.billable;
        has_new boolean := TG_OP <> 'DELETE' AND NEW.billable;
        old_first boolean := NOT (has_old AND has_new) OR OLD.created_at <= NEW.created_at;
    BEGIN
        IF has_new AND NOT old_first THEN
            PERFORM pipeline_rollup_add(
                NEW.team_id, NEW.created_at, 'import', NEW.source_id, 1,
                NEW.status = 'Running', NEW.status = 'Completed',
                NEW.status IN ('Failed', 'BillingLimitReached', 'BillingLimitTooLow'),
                NEW.rows_synced);
        END IF;
        IF has_old THEN
            PERFORM pipeline_rollup_add(
                OLD.team_id, OLD.created_at, 'import', OLD.source_id, -1,
                OLD.status = 'Running', OLD.status = 'Completed',
                OLD.status IN ('Failed', 'BillingLimitReached', 'BillingLimitTooLow'),
                OLD.rows_synced);
        END IF;
        IF has_new AND old_first THEN
            PERFORM pipeline_rollup_add(
                NEW.team_id, NEW.created_at, 'import', NEW.source_id, 1,
                NEW.status = 'Running', NEW.status = 'Completed',
                NEW.status IN ('Failed', 'BillingLimitReached', 'BillingLimitTooLow'),
                NEW.rows_synced);
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION modeling_jobs_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        nil uuid := '00000000-0000-0000-0000-000000000000';
        old_first boolean := TG_OP <> 'UPDATE' OR OLD.created_at <= NEW.created_at;
    BEGIN
        IF TG_OP <> 'DELETE' AND NOT old_first THEN
            PERFORM pipeline_rollup_add(
                NEW.team_id, NEW.created_at, 'model', nil, 1, NEW.status = 'Running',
                NEW.status = 'Completed', NEW.status = 'Failed', NEW.rows_materialized);
        END IF;
        IF TG_OP <> 'INSERT' THEN
            PERFORM pipeline_rollup_add(
                OLD.team_id, OLD.created_at, 'model', nil, -1, OLD.status = 'Running',
                OLD.status = 'Completed', OLD.status = 'Failed', OLD.rows_materialized);
        END IF;
        IF TG_OP <> 'DELETE' AND old_first THEN
            PERFORM pipeline_rollup_add(
                NEW.team_id, NEW.created_at, 'model', nil, 1, NEW.status = 'Running',
                NEW.status = 'Completed', NEW.status = 'Failed', NEW.rows_materialized);
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER external_data_jobs_rollup AFTER INSERT OR UPDATE OR DELETE
    ON external_data_jobs FOR EACH ROW EXECUTE FUNCTION external_data_jobs_rollup()
    """,
    """
    CREATE TRIGGER modeling_jobs_rollup AFTER INSERT OR UPDATE OR DELETE
    ON modeling_jobs FOR EACH ROW EXECUTE FUNCTION modeling_jobs_rollup()
    """,
]
DROP_ROLLUP_TRIGGERS = [
    "DROP TRIGGER IF EXISTS modeling_jobs_rollup ON modeling_jobs",
    "DROP TRIGGER IF EXISTS external_data_jobs_rollup ON external_data_jobs",
    "DROP FUNCTION IF EXISTS modeling_jobs_rollup()",
    "DROP FUNCTION IF EXISTS external_data_jobs_rollup()",
    "DROP FUNCTION IF EXISTS pipeline_rollup_add"
    "(bigint, timestamptz, text, uuid, int, boolean, boolean, boolean, bigint)",
]


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table(
        "billing_records",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval", sa.String(length=16), nullable=False),
        sa.Column("tracked_rows", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_billing_records_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_billing_records")),
    )
    op.create_table(
        "backfill_partitions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("dataset", sa.String(length=16), nullable=False),
        sa.Column("partition_key", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("total_partitions", sa.BigInteger(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_backfill_partitions_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill_partitions")),
        sa.UniqueConstraint(
            "team_id",
            "dataset",
            "partition_key",
            name=op.f("uq_backfill_partitions_team_id_dataset_partition_key"),
        ),
    )
    op.create_table(
        "batch_exports",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_batch_exports_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_exports")),
    )
    op.create_index("ix_batch_exports_team_id", "batch_exports", ["team_id"], unique=False)
    op.create_table(
        "dashboards",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_dashboards_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboards")),
        sa.UniqueConstraint("team_id", "name", name=op.f("uq_dashboards_team_id_name")),
    )
    op.create_table(
        "external_data_sources",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("source_type", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=100), nullable=True),
        sa.Column("latest_error", sa.Text(), nullable=True),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_external_data_sources_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_data_sources")),
    )
    op.create_index(
        "ix_external_data_sources_team_id", "external_data_sources", ["team_id"], unique=False
    )
    op.create_table(
        "pipeline_functions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_pipeline_functions_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_functions")),
    )
    op.create_index(
        "ix_pipeline_functions_team_unhealthy",
        "pipeline_functions",
        ["team_id"],
        unique=False,
        postgresql_where=sa.text("state IN (2, 3, 11, 12) AND enabled AND NOT deleted"),
    )
    op.create_table(
        "saved_queries",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("is_materialized", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=True),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_saved_queries_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_queries")),
    )
    op.create_index("ix_saved_queries_team_id", "saved_queries", ["team_id"], unique=False)
    op.create_table(
        "batch_export_runs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("batch_export_id", sa.UUID(), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latest_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_export_id"],
            ["batch_exports.id"],
            name=op.f("fk_batch_export_runs_batch_export_id_batch_exports"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_batch_export_runs_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_export_runs")),
    )
    op.create_index(
        "ix_batch_export_runs_export_created",
        "batch_export_runs",
        ["batch_export_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_table(
        "external_data_schemas",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("should_sync", sa.Boolean(), nullable=False),
        sa.Column("sync_type", sa.String(length=64), nullable=True),
        sa.Column("latest_error", sa.Text(), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["external_data_sources.id"],
            name=op.f("fk_external_data_schemas_source_id_external_data_sources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_external_data_schemas_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_data_schemas")),
    )
    op.create_index(
        "ix_external_data_schemas_source_id", "external_data_schemas", ["source_id"], unique=False
    )
    op.create_index(
        "ix_external_data_schemas_team_id", "external_data_schemas", ["team_id"], unique=False
    )
    op.create_table(
        "modeling_jobs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("saved_query_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("rows_materialized", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("workflow_run_id", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["saved_query_id"],
            ["saved_queries.id"],
            name=op.f("fk_modeling_jobs_saved_query_id_saved_queries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_modeling_jobs_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_modeling_jobs")),
    )
    op.create_index(
        "ix_modeling_jobs_query_created",
        "modeling_jobs",
        ["saved_query_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index(
        "ix_modeling_jobs_team_created_failed",
        "modeling_jobs",
        ["team_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
        postgresql_where=sa.text("status = 'Failed'"),
    )
    op.create_index(
        "ix_modeling_jobs_team_created_running",
        "modeling_jobs",
        ["team_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
        postgresql_where=sa.text("status = 'Running'"),
    )
    op.create_index(
        "ix_modeling_jobs_team_created_stats",
        "modeling_jobs",
        ["team_id", "created_at", "id"],
        unique=False,
        postgresql_include=["status", "rows_materialized"],
    )
    op.create_table(
        "external_data_jobs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("schema_id", sa.UUID(), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("rows_synced", sa.BigInteger(), nullable=False),
        sa.Column("billable", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latest_error", sa.Text(), nullable=True),
        sa.Column("workflow_run_id", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["schema_id"],
            ["external_data_schemas.id"],
            name=op.f("fk_external_data_jobs_schema_id_external_data_schemas"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["external_data_sources.id"],
            name=op.f("fk_external_data_jobs_source_id_external_data_sources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_external_data_jobs_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_data_jobs")),
    )
    op.create_index(
        "ix_external_data_jobs_billable_team_created",
        "external_data_jobs",
        ["team_id", "created_at"],
        unique=False,
        postgresql_include=["status", "rows_synced", "source_id"],
        postgresql_where=sa.text("billable"),
    )
    op.create_index(
        "ix_external_data_jobs_team_created",
        "external_data_jobs",
        ["team_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index(
        "ix_external_data_jobs_team_created_failed",
        "external_data_jobs",
        ["team_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
        postgresql_where=sa.text(
            "status IN ('Failed', 'BillingLimitReached', 'BillingLimitTooLow')"
        ),
    )
    op.create_index(
        "ix_external_data_jobs_team_created_running",
        "external_data_jobs",
        ["team_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
        postgresql_where=sa.text("status = 'Running'"),
    )
    # ### end Alembic commands ###
    op.create_table(
        "pipeline_job_rollups",
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("jobs", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("running", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("successful", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failed", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_pipeline_job_rollups_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "team_id",
            "bucket_start",
            "kind",
            name=op.f("pk_pipeline_job_rollups"),
            postgresql_include=["jobs", "running", "successful", "failed"],
        ),
    )
    op.create_table(
        "pipeline_daily_rows",
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("day_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("rows", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_pipeline_daily_rows_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "team_id", "day_start", "kind", "source_id", name=op.f("pk_pipeline_daily_rows")
        ),
    )
    for statement in ROLLUP_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_ROLLUP_TRIGGERS:
        op.execute(statement)
    op.drop_table("pipeline_daily_rows")
    op.drop_table("pipeline_job_rollups")
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_index(
        "ix_external_data_jobs_team_created_running",
        table_name="external_data_jobs",
        postgresql_where=sa.text("status = 'Running'"),
    )
    op.drop_index(
        "ix_external_data_jobs_team_created_failed",
        table_name="external_data_jobs",
        postgresql_where=sa.text(
            "status IN ('Failed', 'BillingLimitReached', 'BillingLimitTooLow')"
        ),
    )
    op.drop_index("ix_external_data_jobs_team_created", table_name="external_data_jobs")
    op.drop_index(
        "ix_external_data_jobs_billable_team_created",
        table_name="external_data_jobs",
        postgresql_include=["status", "rows_synced", "source_id"],
        postgresql_where=sa.text("billable"),
    )
    op.drop_table("external_data_jobs")
    op.drop_index(
        "ix_modeling_jobs_team_created_stats",
        table_name="modeling_jobs",
        postgresql_include=["status", "rows_materialized"],
    )
    op.drop_index(
        "ix_modeling_jobs_team_created_running",
        table_name="modeling_jobs",
        postgresql_where=sa.text("status = 'Running'"),
    )
    op.drop_index(
        "ix_modeling_jobs_team_created_failed",
        table_name="modeling_jobs",
        postgresql_where=sa.text("status = 'Failed'"),
    )
    op.drop_index("ix_modeling_jobs_query_created", table_name="modeling_jobs")
    op.drop_table("modeling_jobs")
    op.drop_index("ix_external_data_schemas_team_id", table_name="external_data_schemas")
    op.drop_index("ix_external_data_schemas_source_id", table_name="external_data_schemas")
    op.drop_table("external_data_schemas")
    op.drop_index("ix_batch_export_runs_export_created", table_name="batch_export_runs")
    op.drop_table("batch_export_runs")
    op.drop_index("ix_saved_queries_team_id", table_name="saved_queries")
    op.drop_table("saved_queries")
    op.drop_index(
        "ix_pipeline_functions_team_unhealthy",
        table_name="pipeline_functions",
        postgresql_where=sa.text("state IN (2, 3, 11, 12) AND enabled AND NOT deleted"),
    )
    op.drop_table("pipeline_functions")
    op.drop_index("ix_external_data_sources_team_id", table_name="external_data_sources")
    op.drop_table("external_data_sources")
    op.drop_table("dashboards")
    op.drop_index("ix_batch_exports_team_id", table_name="batch_exports")
    op.drop_table("batch_exports")
    op.drop_table("backfill_partitions")
    op.drop_table("billing_records")
    # ### end Alembic commands ###
