"""Crash injection for tests: `WAREHOUSE_FAILPOINT=before:database` (or `after:role`, ...).

When the worker reaches the named point it SIGKILLs itself: no cleanup, no `finally`, exactly
like a machine losing power. `before:<step>` fires just before the step's action on the cluster,
`after:<step>` right after the action and before it is recorded.
"""

from __future__ import annotations

import logging
import os
import signal

ENV_VAR = "WAREHOUSE_FAILPOINT"
logger = logging.getLogger(__name__)


def failpoint(when: str, step: str) -> None:
    if os.environ.get(ENV_VAR) == f"{when}:{step}":
        logger.warning(
            "failpoint reached; killing this worker", extra={"failpoint": f"{when}:{step}"}
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
