"""The warehouse cluster side: backends that create and drop real resources.

Entry points: `build_warehouse_backend(settings)` (PostgreSQL cluster) and
`build_secret_box(settings)` (the encrypted root password). Storage is the S3 API (`app.s3`).
"""

from __future__ import annotations

from app.core.passwords import SecretBox
from app.pgcluster.postgres import PostgresWarehouseBackend
from app.settings import Settings


def build_warehouse_backend(
    settings: Settings, *, pool_max_size: int = 10
) -> PostgresWarehouseBackend:
    return PostgresWarehouseBackend.from_settings(settings, pool_max_size=pool_max_size)


def build_secret_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key.get_secret_value())
