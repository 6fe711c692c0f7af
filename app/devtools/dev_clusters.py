"""`warehouse dev --clusters N`: more password-checking clusters, registered once the API is up.

The first cluster is the one `warehouse dev` always starts (`.data/warehouse-cluster`, the
`default` cluster of the fleet); clusters 2..N live in `.data/warehouse-cluster-<i>` and are
registered as `dev-<i>` through the internal API (`POST /internal/clusters`), so a newcomer can
provision on several clusters and try `warehouse warehouses move` or `clusters drain` locally.
Each cluster keeps its port in `<data dir>.port`, so its admin DSN (and registration) stays the
same across restarts.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.devtools.embedded import PasswordCheckingCluster, free_port

logger = logging.getLogger("app.dev")
NAME_PREFIX = "dev-"


@dataclass(frozen=True)
class DevCluster:
    name: str
    cluster: PasswordCheckingCluster


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As PostgreSQL binds it: a port whose last connections linger in TIME_WAIT is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def saved_port(datadir: Path) -> int:
    """The port this cluster used last time (if still free), else a new one, remembered."""
    port_file = datadir.parent / f"{datadir.name}.port"
    if port_file.is_file():
        with contextlib.suppress(ValueError):
            port = int(port_file.read_text().strip())
            if _port_is_free(port):
                return port
    port = free_port()
    port_file.parent.mkdir(parents=True, exist_ok=True)
    port_file.write_text(f"{port}\n")
    return port


def start_cluster(datadir: Path, stack: contextlib.ExitStack) -> PasswordCheckingCluster:
    """Start (or restart) the cluster; a first `initdb` that fails is cleared and tried again
    once (on a busy machine it can fail for want of shared memory or semaphores)."""
    fresh = not (datadir / "PG_VERSION").exists()
    try:
        cluster = PasswordCheckingCluster(datadir, port=saved_port(datadir)).start()
    except subprocess.CalledProcessError as exc:
        if not fresh:
            raise
        logger.warning(
            "initdb failed; trying once more",
            extra={"datadir": str(datadir), "stderr": (exc.stderr or "")[-500:]},
        )
        shutil.rmtree(datadir, ignore_errors=True)
        cluster = PasswordCheckingCluster(datadir, port=saved_port(datadir)).start()
    stack.callback(cluster.stop)
    return cluster


def start_extra_clusters(
    data_dir: Path, count: int, stack: contextlib.ExitStack
) -> list[DevCluster]:
    """Clusters 2..count (the first is the dev server's own)."""
    extra = []
    for index in range(2, count + 1):
        cluster = start_cluster(data_dir / f"warehouse-cluster-{index}", stack)
        extra.append(DevCluster(f"{NAME_PREFIX}{index}", cluster))
    return extra


async def register_clusters(
    base_url: str, internal_token: str, clusters: list[DevCluster]
) -> list[str]:
    """Register each cluster through the internal API; one line per cluster for the banner."""
    lines = []
    headers = {"Authorization": f"Bearer {internal_token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        for dev in clusters:
            r = await client.post(
                "/internal/clusters",
                json={
                    "name": dev.name,
                    "admin_url": dev.cluster.admin_dsn,
                    "public_host": "127.0.0.1",
                    "public_port": dev.cluster.port,
                },
            )
            if r.status_code in (200, 201):
                lines.append(f"  cluster {dev.name}: 127.0.0.1:{dev.cluster.port} (registered)")
            else:
                detail = r.json().get("detail", r.text) if r.content else r.status_code
                lines.append(f"  cluster {dev.name}: not registered ({detail})")
    return lines
