"""ORM models. Import every model module here so Alembic and relationships see all tables."""

from app.models.audit import AuditLog
from app.models.base import Base
from app.models.fleet import ClusterState, WarehouseCluster
from app.models.idempotency import IdempotencyKey
from app.models.identity import (
    MembershipLevel,
    Organization,
    OrganizationMembership,
    PersonalAPIKey,
    Project,
    Team,
    User,
)
from app.models.moves import MoveStatus, WarehouseMove
from app.models.operations import Operation, OperationAction, OperationStatus
from app.models.pipelines import (
    BackfillPartition,
    BatchExport,
    BatchExportRun,
    BillingRecord,
    Dashboard,
    ExternalDataJob,
    ExternalDataSchema,
    ExternalDataSource,
    ModelingJob,
    PipelineDailyRows,
    PipelineFunction,
    PipelineJobRollup,
    SavedQuery,
)
from app.models.storage import BucketDeletion, Snapshot, SnapshotKind, SnapshotStatus
from app.models.warehouse import ManagedWarehouse, WarehouseState, WarehouseTeamMembership
from app.models.webhooks import (
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
    WebhookEvent,
)

__all__ = [
    "AuditLog",
    "BackfillPartition",
    "Base",
    "BatchExport",
    "BatchExportRun",
    "BillingRecord",
    "BucketDeletion",
    "ClusterState",
    "Dashboard",
    "ExternalDataJob",
    "ExternalDataSchema",
    "ExternalDataSource",
    "IdempotencyKey",
    "ManagedWarehouse",
    "MembershipLevel",
    "ModelingJob",
    "MoveStatus",
    "Operation",
    "OperationAction",
    "OperationStatus",
    "Organization",
    "OrganizationMembership",
    "PersonalAPIKey",
    "PipelineDailyRows",
    "PipelineFunction",
    "PipelineJobRollup",
    "Project",
    "SavedQuery",
    "Snapshot",
    "SnapshotKind",
    "SnapshotStatus",
    "Team",
    "User",
    "WarehouseCluster",
    "WarehouseMove",
    "WarehouseState",
    "WarehouseTeamMembership",
    "WebhookDelivery",
    "WebhookDeliveryAttempt",
    "WebhookEndpoint",
    "WebhookEvent",
]
