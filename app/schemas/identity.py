"""Bodies of the internal identity API (API.md §6) and the CLI's JSON output."""

from __future__ import annotations

import uuid
import zoneinfo
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from app.core.scopes import SCOPE_PATTERN

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"'{value}' is not a known IANA time zone") from exc
    return value


def _check_scope(value: str) -> str:
    if not SCOPE_PATTERN.fullmatch(value):
        raise ValueError(f"'{value}' is not a scope: use 'object:read', 'object:write' or '*'")
    return value


TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_check_timezone)]
ScopeStr = Annotated[str, StringConstraints(max_length=80), AfterValidator(_check_scope)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_characters(cls, value: object) -> object:
        # PostgreSQL text cannot hold U+0000; refuse it here, naming the field.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL (\\u0000) characters")
        return value


class OrganizationCreate(StrictBody):
    name: Name
    id: uuid.UUID | None = None


class OrganizationOut(BaseModel):
    id: uuid.UUID
    name: str


class ProjectCreate(StrictBody):
    organization_id: uuid.UUID
    name: Name
    timezone: TimeZone = "UTC"


class ProjectOut(BaseModel):
    id: int
    organization_id: uuid.UUID
    name: str
    environment_id: int


class EnvironmentCreate(StrictBody):
    project_id: int = Field(ge=1, le=2**63 - 1)
    name: Name
    timezone: TimeZone = "UTC"


class EnvironmentOut(BaseModel):
    id: int
    project_id: int
    name: str
    timezone: str


class UserCreate(StrictBody):
    email: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, to_lower=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"
        ),
    ]
    organization_id: uuid.UUID
    level: Annotated[int, Field(description="1 member, 8 admin, 15 owner")]


class UserOut(BaseModel):
    id: int
    email: str


class PersonalAPIKeyCreate(StrictBody):
    user_id: int = Field(ge=1, le=2**63 - 1)
    scopes: Annotated[list[ScopeStr], Field(min_length=1, max_length=50)]
    label: Annotated[str, StringConstraints(max_length=100)] = ""
    scoped_teams: (
        Annotated[list[Annotated[int, Field(ge=1, le=2**31 - 1)]], Field(max_length=1000)] | None
    ) = None
    scoped_organizations: Annotated[list[uuid.UUID], Field(max_length=1000)] | None = None


class PersonalAPIKeyOut(BaseModel):
    id: uuid.UUID
    key: str = Field(description="The plaintext key. Shown only in this response.")
    mask_value: str
    scopes: list[str]
