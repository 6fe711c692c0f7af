"""Job names shared by the API (which enqueues moves) and the worker (which runs them)."""

from __future__ import annotations

import uuid

ADVANCE_MOVE = "advance_move"
MOVE_JOB_PREFIX = "move:"


def move_job_id(move_id: uuid.UUID | str) -> str:
    return f"{MOVE_JOB_PREFIX}{move_id}"


def move_of(job_id: str) -> uuid.UUID | None:
    if not job_id.startswith(MOVE_JOB_PREFIX):
        return None
    try:
        return uuid.UUID(job_id[len(MOVE_JOB_PREFIX) :])
    except ValueError:
        return None
