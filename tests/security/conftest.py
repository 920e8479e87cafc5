"""Security tests run against the same live world as the fuzzers (tests/fuzz/world.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.world import LiveApp, live_world


@pytest.fixture(scope="module")
def live(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    yield from live_world(tmp_path_factory.mktemp("world"), redis_server)


@pytest.fixture(scope="module")
def incident_id(live: LiveApp) -> str:
    return live.seed_incident()
