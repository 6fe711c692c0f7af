"""Bootstrap: a one-cluster setup needs no registration (API.md §8).

While no cluster is registered, the configured cluster (`WAREHOUSE_ADMIN_URL`, or its default)
is registered as `default` with `WAREHOUSE_PUBLIC_HOST`/`PORT`. The API and the worker do it at
start-up, and placement does it when it finds no cluster at all. A placeholder `default` row
(written by the migration for warehouses older than the registry) counts as unregistered.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.crypto import SecretBox
from app.models import WarehouseCluster
from app.settings import Settings

logger = logging.getLogger(__name__)
DEFAULT_CLUSTER = "default"
ADMIN_URL_PURPOSE = "warehouse-api/warehouse-cluster-admin-url/v1"
_LOCK_NAMESPACE = 72_010_007


def admin_url_box(settings: Settings) -> SecretBox:
    """Encrypts cluster admin DSNs at rest, with a key of their own purpose."""
    return SecretBox(settings.secret_key.get_secret_value(), ADMIN_URL_PURPOSE)


def configured_endpoint(settings: Settings) -> tuple[str, int]:
    """Host and port customers use for the configured cluster."""
    port = settings.warehouse_public_port or urlsplit(settings.warehouse_admin_dsn).port or 5432
    return settings.warehouse_public_host, port


async def bootstrap_in(session: AsyncSession, settings: Settings) -> bool:
    """Register the configured cluster as `default` if none is registered; True if it did."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:ns, 0)"), {"ns": _LOCK_NAMESPACE})
    registered = await session.scalar(
        select(WarehouseCluster.name)
        .where(WarehouseCluster.admin_url_ciphertext.is_not(None))
        .limit(1)
    )
    if registered is not None:
        return False
    host, port = configured_endpoint(settings)
    ciphertext = admin_url_box(settings).encrypt(settings.warehouse_admin_dsn.encode())
    stmt = insert(WarehouseCluster).values(
        name=DEFAULT_CLUSTER,
        admin_url_ciphertext=ciphertext,
        public_host=host,
        public_port=port,
        labels={},
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[WarehouseCluster.name],
            set_={
                "admin_url_ciphertext": ciphertext,
                "public_host": host,
                "public_port": port,
            },
        )
    )
    logger.info("registered the configured warehouse cluster as 'default'")
    return True


async def bootstrap_default_cluster(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """At start-up, in a transaction of its own; a database that does not answer is logged
    (placement bootstraps lazily later), never fatal."""
    try:
        async with sessionmaker() as session, session.begin():
            await bootstrap_in(session, settings)
    except Exception as exc:
        logger.warning(
            "could not bootstrap the default warehouse cluster; will retry on placement",
            extra={"error_class": type(exc).__name__},
        )
