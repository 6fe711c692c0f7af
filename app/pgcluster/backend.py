"""What the provisioning state machine needs from a warehouse cluster.

Every operation is idempotent and looks at the cluster's catalogs first, so a step may run any
number of times (arq delivers at least once; a worker may die at any line).
"""

from __future__ import annotations

from typing import Protocol

from app.pgcluster.team_tables import TeamTables


class WarehouseBackend(Protocol):
    # The cluster's admin DSN, for the programs that take one (pg_dump / pg_restore).
    admin_dsn: str

    async def name_exists(self, name: str) -> bool:
        """Does a database or a role with this name exist on the cluster?"""
        ...

    async def database_exists(self, name: str) -> bool: ...

    async def role_exists(self, name: str) -> bool: ...

    async def ensure_database(self, name: str) -> bool:
        """Create the database (owned by the admin until the role step); True if created."""
        ...

    async def ensure_login_role(self, role: str, *, database: str, verifier: str) -> None:
        """Create or update the LOGIN role, make it the database's only way in."""
        ...

    async def set_password(self, role: str, verifier: str) -> None: ...

    async def terminate_sessions(
        self, *, database: str | None = None, role: str | None = None
    ) -> int: ...

    async def drop_database(self, name: str) -> bool: ...

    async def drop_role(self, name: str) -> bool: ...

    async def ensure_team_tables(
        self, database: str, *, owner_role: str, tables: TeamTables
    ) -> None:
        """Create an environment's tables inside the warehouse database, owned by the role."""
        ...

    async def probe(self, database: str, role: str, password: str) -> None:
        """Log in as the role with its password and run `SELECT 1`; raises on failure."""
        ...

    async def trust_auth_problem(self) -> str | None:
        """Why passwords would mean nothing on this cluster (host logins trusted), or None."""
        ...

    async def close(self) -> None: ...
