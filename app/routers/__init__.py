"""Thin modules that declare the public actions (next to their functions) and the internal API.

`all_actions()` is the registry the app registers under both prefixes.
"""

from __future__ import annotations

from app.pipeline.actions import Action


def all_actions() -> list[Action]:
    from app.routers import membership, operations, pipelines, storage, warehouse

    return [
        *warehouse.ACTIONS,
        *membership.ACTIONS,
        *pipelines.ACTIONS,
        *operations.ACTIONS,
        *storage.ACTIONS,
    ]
