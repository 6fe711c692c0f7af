"""Creating organizations, projects, environments, users and personal API keys.

Shared by the internal API and the CLI. Takes a session, flushes, never commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound, ValidationFailed
from app.models import (
    MembershipLevel,
    Organization,
    OrganizationMembership,
    PersonalAPIKey,
    Project,
    Team,
    User,
)
from app.services.identity.keys import generate_key, hash_key, mask_key

T = TypeVar("T")


@dataclass(frozen=True)
class Created(Generic[T]):
    obj: T
    created: bool


@dataclass(frozen=True)
class IssuedKey:
    key: PersonalAPIKey
    plaintext: str


class IdentityService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create_organization(
        self, name: str, org_id: uuid.UUID | None = None
    ) -> Created[Organization]:
        if org_id is not None:
            existing = await self.session.get(Organization, org_id)
            if existing is not None:
                return Created(existing, created=False)
        org = Organization(id=org_id or uuid.uuid4(), name=name)
        self.session.add(org)
        await self.session.flush()
        return Created(org, created=True)

    async def create_project(
        self, organization_id: uuid.UUID, name: str, timezone: str = "UTC"
    ) -> tuple[Project, Team]:
        if await self.session.get(Organization, organization_id) is None:
            raise NotFound("Organization not found.", attr="organization_id")
        project = Project(organization_id=organization_id, name=name)
        self.session.add(project)
        await self.session.flush()
        team = Team(
            project_id=project.id,
            organization_id=organization_id,
            name=name,
            timezone=timezone,
            is_primary=True,
        )
        self.session.add(team)
        await self.session.flush()
        return project, team

    async def create_environment(self, project_id: int, name: str, timezone: str = "UTC") -> Team:
        project = await self.session.get(Project, project_id)
        if project is None:
            raise NotFound("Project not found.", attr="project_id")
        team = Team(
            project_id=project.id,
            organization_id=project.organization_id,
            name=name,
            timezone=timezone,
            is_primary=False,
        )
        self.session.add(team)
        await self.session.flush()
        return team

    async def create_user(
        self, email: str, organization_id: uuid.UUID, level: int
    ) -> Created[User]:
        if level not in {lvl.value for lvl in MembershipLevel}:
            raise ValidationFailed(
                "level must be 1 (member), 8 (admin) or 15 (owner)", attr="level"
            )
        if await self.session.get(Organization, organization_id) is None:
            raise NotFound("Organization not found.", attr="organization_id")
        inserted = (
            await self.session.execute(
                insert(User)
                .values(email=email)
                .on_conflict_do_nothing(index_elements=["email"])
                .returning(User.id)
            )
        ).scalar_one_or_none()
        user = (await self.session.execute(select(User).where(User.email == email))).scalar_one()
        created = inserted is not None
        await self.session.execute(
            insert(OrganizationMembership)
            .values(organization_id=organization_id, user_id=user.id, level=level)
            .on_conflict_do_update(
                index_elements=["organization_id", "user_id"], set_={"level": level}
            )
        )
        await self.session.flush()
        return Created(user, created=created)

    async def user_by_email(self, email: str) -> User:
        user = (
            await self.session.execute(select(User).where(User.email == email.lower()))
        ).scalar_one_or_none()
        if user is None:
            raise NotFound(f"No user with email {email}.", attr="email")
        return user

    async def create_key(
        self,
        user_id: int,
        scopes: list[str],
        *,
        label: str = "",
        scoped_teams: list[int] | None = None,
        scoped_organizations: list[str] | None = None,
    ) -> IssuedKey:
        if await self.session.get(User, user_id) is None:
            raise NotFound("User not found.", attr="user_id")
        plaintext = generate_key()
        key = PersonalAPIKey(
            user_id=user_id,
            label=label,
            secure_value=hash_key(plaintext),
            mask_value=mask_key(plaintext),
            scopes=list(dict.fromkeys(scopes)),
            scoped_teams=scoped_teams or None,
            scoped_organizations=scoped_organizations or None,
        )
        self.session.add(key)
        await self.session.flush()
        return IssuedKey(key=key, plaintext=plaintext)

    async def delete_key(self, key_id: uuid.UUID) -> None:
        result = await self.session.execute(
            delete(PersonalAPIKey).where(PersonalAPIKey.id == key_id).returning(PersonalAPIKey.id)
        )
        if result.first() is None:
            raise NotFound("Personal API key not found.")
