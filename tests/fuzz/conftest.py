"""Fuzz fixtures: one live app per module, and Hypothesis settings that keep the suite reproducible and bounded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.fuzz.world import LiveApp, live_world

#: derandomized (the same examples on every run and in CI), no example database, no per-example deadline
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def live(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    yield from live_world(tmp_path_factory.mktemp("world"), redis_server)


@pytest.fixture(scope="module")
def incident_id(live: LiveApp) -> str:
    return live.seed_incident()
