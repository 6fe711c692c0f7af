"""The test harness: the app under test, tenants made through the internal API, settings.

Fixtures live in `tests/conftest.py`; everything they and the tests share lives here.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.devtools.embedded import embedded_postgres
from app.main import create_app
from app.settings import Settings, to_plain_dsn
from tests.support.status_recorder import expect

ROOT = Path(__file__).resolve().parents[2]
INTERNAL_TOKEN = "test-internal-token-" + uuid.uuid4().hex
RUN_ID = uuid.uuid4().hex[:10]
STATUS_FILE = os.path.join(tempfile.gettempdir(), f"wh-statuses-{RUN_ID}.txt")
os.environ["STATUS_RECORD_FILE"] = STATUS_FILE


def make_app(settings: Settings) -> FastAPI:
    """The production app. (Statuses count for the documented-status gate only when a test
    asserts them with `tests.support.status_recorder.expect`.)"""
    return create_app(settings)


def server_dsn() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return to_plain_dsn(url)
    return embedded_postgres(ROOT / ".data" / "test-pg")


INTERNAL_HEADERS = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


@dataclass
class Tenant:
    """An organization with one project (primary environment) and an admin with a `*` key."""

    client: httpx.AsyncClient
    org_id: str
    project_id: int
    env_id: int
    user_id: int
    key: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def env_url(self, action: str) -> str:
        return f"/api/environments/{self.env_id}/data_warehouse/{action}/"

    def project_url(self, action: str) -> str:
        return f"/api/projects/{self.project_id}/data_warehouse/{action}/"

    async def add_user(self, level: int = 1, scopes: list[str] | None = None, **key: Any) -> str:
        """A new member of this organization; returns a personal API key for them."""
        r = await self.client.post(
            "/internal/users",
            json={
                "email": f"{uuid.uuid4().hex[:12]}@example.com",
                "organization_id": self.org_id,
                "level": level,
            },
            headers=INTERNAL_HEADERS,
        )
        expect(r, 201)
        return await self.add_key(r.json()["id"], scopes or ["*"], **key)

    async def add_key(self, user_id: int, scopes: list[str], **extra: Any) -> str:
        r = await self.client.post(
            "/internal/personal_api_keys",
            json={"user_id": user_id, "scopes": scopes, **extra},
            headers=INTERNAL_HEADERS,
        )
        expect(r, 201)
        key: str = r.json()["key"]
        return key

    async def add_environment(self, name: str = "staging", timezone: str = "UTC") -> int:
        r = await self.client.post(
            "/internal/environments",
            json={"project_id": self.project_id, "name": name, "timezone": timezone},
            headers=INTERNAL_HEADERS,
        )
        expect(r, 201)
        env_id: int = r.json()["id"]
        return env_id


async def create_tenant(
    client: httpx.AsyncClient,
    *,
    level: int = 8,
    scopes: list[str] | None = None,
    timezone: str = "UTC",
) -> Tenant:
    r = await client.post(
        "/internal/organizations", json={"name": "Acme"}, headers=INTERNAL_HEADERS
    )
    expect(r, 201)
    org_id = r.json()["id"]
    r = await client.post(
        "/internal/projects",
        json={"organization_id": org_id, "name": "Default project", "timezone": timezone},
        headers=INTERNAL_HEADERS,
    )
    expect(r, 201)
    project = r.json()
    r = await client.post(
        "/internal/users",
        json={
            "email": f"{uuid.uuid4().hex[:12]}@example.com",
            "organization_id": org_id,
            "level": level,
        },
        headers=INTERNAL_HEADERS,
    )
    expect(r, 201)
    user_id = r.json()["id"]
    tenant = Tenant(client, org_id, project["id"], project["environment_id"], user_id, "")
    tenant.key = await tenant.add_key(user_id, scopes or ["*"])
    return tenant


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a subprocess (uvicorn, worker, CLI) needs to act on the test databases."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAREHOUSE_", "DATABASE_"))}
    return env | settings.as_environment()
