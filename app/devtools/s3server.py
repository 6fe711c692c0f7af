"""A local S3-compatible HTTP server for `warehouse dev` and the tests: moto's server.

`EmbeddedS3().start()` runs `python -m moto.server` (the `moto[server]` package, in the
`embedded` extra only) as a child process on 127.0.0.1 and a free port, and waits until it
answers. moto keeps everything in memory (large objects spill to temporary files): it has no
data directory, so a restart loses every bucket and object. The worker's storage check then
re-creates the buckets of live warehouses and marks snapshots whose object is gone `failed`.

Any access key works against it; `EMBEDDED_S3_ACCESS_KEY` / `..._SECRET` are what we send.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

EMBEDDED_S3_ACCESS_KEY = "embedded"
EMBEDDED_S3_SECRET = "embedded-secret"  # noqa: S105 - moto accepts any key; nothing to protect
START_TIMEOUT_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class EmbeddedS3:
    """moto's S3 server in a child process. `port` stays the same across `restart()`."""

    port: int = 0
    log_file: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> EmbeddedS3:
        try:
            import moto.server  # noqa: F401 - only to fail early with a clear message
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "S3_ENDPOINT_URL is not set and the embedded S3 server is not installed "
                "(pip install 'warehouse-api[embedded]')"
            ) from exc
        self.port = self.port or _free_port()
        out = self.log_file.open("ab") if self.log_file is not None else subprocess.DEVNULL
        env = {**os.environ, "MOTO_PORT": str(self.port)}
        self._proc = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C in `warehouse dev` is forwarded, not broadcast
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers(self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"the embedded S3 server exited ({self._proc.returncode})")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the embedded S3 server did not start in time")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # The port must be free again before a restart binds it.
        deadline = time.monotonic() + 5
        while _answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop and start on the same port; moto starts empty (see the module docstring)."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def __enter__(self) -> EmbeddedS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
