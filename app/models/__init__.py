"""ORM models. Import every model module here so Alembic and relationships see all tables."""

from app.models.base import Base
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
from app.models.warehouse import ManagedWarehouse, WarehouseState, WarehouseTeamMembership

__all__ = [
    "Base",
    "IdempotencyKey",
    "ManagedWarehouse",
    "MembershipLevel",
    "Organization",
    "OrganizationMembership",
    "PersonalAPIKey",
    "Project",
    "Team",
    "User",
    "WarehouseState",
    "WarehouseTeamMembership",
]
