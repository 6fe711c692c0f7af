"""Refuse to hand out passwords that mean nothing: check the cluster's pg_hba at start-up.

A cluster whose `pg_hba` trusts host logins accepts any password, so provisioning there would
give people credentials that protect nothing. The API reports the problem on `/readyz`; the
worker refuses provisioning steps (teardown still runs). `WAREHOUSE_ALLOW_TRUST_AUTH=true`
allows it for a throwaway setup.
"""

from __future__ import annotations

import asyncio
import logging

from app.pgcluster.backend import WarehouseBackend
from app.settings import Settings

logger = logging.getLogger(__name__)
CHECK_TIMEOUT = 5.0


class TrustAuthRefused(Exception):
    """Provisioning refused: the cluster does not check passwords."""


class ClusterAuthGuard:
    """Caches the first definitive answer; an unreachable cluster is asked again next time."""

    def __init__(self, backend: WarehouseBackend, settings: Settings) -> None:
        self.backend = backend
        self.allow_trust = settings.warehouse_allow_trust_auth
        self._checked = False
        self._problem: str | None = None

    async def problem(self) -> str | None:
        if self.allow_trust:
            return None
        if not self._checked:
            async with asyncio.timeout(CHECK_TIMEOUT):
                self._problem = await self.backend.trust_auth_problem()
            self._checked = True
        return self._problem

    async def problem_at_startup(self) -> str | None:
        """Like `problem()`, but a cluster that does not answer is logged, not fatal."""
        try:
            problem = await self.problem()
        except Exception as exc:
            logger.warning(
                "could not read pg_hba_file_rules on the warehouse cluster; will retry",
                extra={"error_class": type(exc).__name__},
            )
            return None
        if problem:
            logger.error("warehouse cluster refuses to be provisioned: %s", problem)
        return problem

    async def ensure_safe(self) -> None:
        problem = await self.problem()
        if problem:
            raise TrustAuthRefused(problem)
