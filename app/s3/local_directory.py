"""Per-organization storage: a directory under `STORAGE_ROOT` (create/remove are idempotent)."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Protocol


class Storage(Protocol):
    async def ensure(self, organization_id: uuid.UUID) -> str:
        """Create the organization's location if missing; returns where it is."""
        ...

    async def remove(self, organization_id: uuid.UUID) -> None: ...

    async def exists(self, organization_id: uuid.UUID) -> bool: ...


class LocalDirectoryStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path_for(self, organization_id: uuid.UUID) -> Path:
        return self.root / str(organization_id)

    async def ensure(self, organization_id: uuid.UUID) -> str:
        path = self.path_for(organization_id)
        await asyncio.to_thread(path.mkdir, mode=0o700, parents=True, exist_ok=True)
        return str(path)

    async def remove(self, organization_id: uuid.UUID) -> None:
        path = self.path_for(organization_id)
        if path.exists():
            await asyncio.to_thread(shutil.rmtree, path)

    async def exists(self, organization_id: uuid.UUID) -> bool:
        return self.path_for(organization_id).is_dir()
