"""Fixtures for provider tests: real Redis, the fake clock, one shared aiohttp session, an open incident."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from responder.actions.base import ProviderDeps, StepContext
from responder.clock import FakeClock
from responder.events import Severity
from responder.incidents.model import Incident
from responder.incidents.service import IncidentService
from responder.store.incidents import IncidentStore
from responder.store.keys import Keys
from responder.store.provider_state import ProviderState
from responder.store.redis import connect
from responder.store.status import StatusStore


@pytest.fixture
async def deps(redis_url: str, clock: FakeClock) -> AsyncIterator[ProviderDeps]:
    keys = Keys("test")
    async with connect(redis_url) as redis, aiohttp.ClientSession() as http:
        yield ProviderDeps(http=http, clock=clock, incidents=IncidentService(IncidentStore(redis, keys), clock),
                           status=StatusStore(redis, keys), state=ProviderState(redis, keys),
                           public_url="https://responder.example.com")


@pytest.fixture
async def incident(deps: ProviderDeps) -> Incident:
    opened, _ = await deps.incidents.open(
        key="api-error-rate|service=api", rule_id="api-error-rate", title="API error rate above 5%",
        severity=Severity.CRITICAL, group={"service": "api"}, playbook="rollback-api", event=None,
        text="opened by test")
    return await deps.incidents.store.get(opened.id) or opened


@pytest.fixture
def ctx(incident: Incident) -> StepContext:
    return StepContext(incident=incident, run_id=f"{incident.id}-rollback-api-main", step="rollback",
                       incident_url=f"https://responder.example.com/incidents/{incident.id}")
