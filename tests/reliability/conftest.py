"""Session fixtures: a 3-master Redis Cluster and a Sentinel setup, from Debian's redis-server and redis-cli."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.servers import Cluster, SentinelSetup, missing_binaries


def _require_binaries() -> None:
    missing = missing_binaries()
    if missing:
        reason = (f"{', '.join(missing)} not installed: `apt-get install -y redis-server redis-tools` "
                  "(bash .ci/run does)")
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three masters, slots spread by `redis-cli --cluster create`, cluster_state:ok on every node."""
    _require_binaries()
    cluster = Cluster.start(tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: Cluster) -> str:
    """The session cluster, emptied before each test."""
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture
def sentinel_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSetup]:
    """A fresh primary + replica + 3 Sentinels for each test (the tests fail the primary over)."""
    _require_binaries()
    setup = SentinelSetup.start(tmp_path_factory.mktemp("sentinel"))
    yield setup
    setup.stop()
