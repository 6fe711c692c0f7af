"""The warehouse cluster side: backends that create and drop real resources.

Entry points: `build_warehouse_backend(settings)` (PostgreSQL cluster), `build_storage(settings)`
(a directory per organization) and `build_secret_box(settings)` (the encrypted root password).
"""

from __future__ import annotations

from app.core.passwords import SecretBox
from app.pgcluster.postgres import PostgresWarehouseBackend
from app.s3.local_directory import LocalDirectoryStorage
from app.settings import Settings


def build_warehouse_backend(
    settings: Settings, *, pool_max_size: int = 10
) -> PostgresWarehouseBackend:
    return PostgresWarehouseBackend.from_settings(settings, pool_max_size=pool_max_size)


def build_storage(settings: Settings) -> LocalDirectoryStorage:
    return LocalDirectoryStorage(settings.storage_root)


def build_secret_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key.get_secret_value())
