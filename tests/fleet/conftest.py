"""Fleet tests: more throwaway password-checking clusters next to the suite's own one."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.devtools.embedded import PasswordCheckingCluster


def _cluster(prefix: str) -> Iterator[PasswordCheckingCluster]:
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    cluster = PasswordCheckingCluster(tmp / "data").start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def second_cluster() -> Iterator[PasswordCheckingCluster]:
    yield from _cluster("wh-cluster-b-")


@pytest.fixture(scope="session")
def third_cluster() -> Iterator[PasswordCheckingCluster]:
    yield from _cluster("wh-cluster-c-")
