"""statuspage.*: component statuses and public incidents against the Statuspage fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from responder.actions.base import ActionResult, ProviderDeps, StepContext
from responder.actions.statuspage import (
    StatuspageConfig,
    StatuspageIncidentParams,
    StatuspageProvider,
    StatuspageResolveParams,
    StatuspageSetParams,
)
from responder.config.base import StrictModel
from responder.errors import PermanentActionError, RetryableActionError
from tests.actions.conformance import CHECKS, Case, conformance
from tests.fakes.statuspage import StatuspageFake
from tests.fakes.vendor import FakeVendor

API_KEY = "sp-api-key-0123456789abcdef-secret"
PAGE_ID = "pg7x2m9pq4r1"


@pytest.fixture
async def fake() -> AsyncIterator[StatuspageFake]:
    async with StatuspageFake(api_key=API_KEY, page_id=PAGE_ID) as server:
        yield server


def make_provider(deps: ProviderDeps, fake: StatuspageFake, **extra: Any) -> StatuspageProvider:
    config = StatuspageConfig.model_validate({"api_key": API_KEY, "page_id": PAGE_ID, "base_url": fake.url,
                                              "timeout": "400ms", **extra})
    return StatuspageProvider(config, deps)


@pytest.fixture
def provider(deps: ProviderDeps, fake: StatuspageFake) -> StatuspageProvider:
    return make_provider(deps, fake)


async def open_incident(provider: StatuspageProvider, ctx: StepContext, **params: Any) -> ActionResult:
    return await provider.run("incident", StatuspageIncidentParams.model_validate(params), ctx)


# -- conformance ----------------------------------------------------------------------------------------------
def _expect_set(result: ActionResult, fake: FakeVendor) -> None:
    assert isinstance(fake, StatuspageFake)
    assert fake.component("API")["status"] == "major_outage"
    assert result.output["component"] == "API" and fake.requests[-1].method == "PATCH"


def _expect_incident(result: ActionResult, fake: FakeVendor) -> None:
    assert isinstance(fake, StatuspageFake)
    incident = fake.incidents[result.output["incident_id"]]
    assert incident["name"] == "API error rate above 5%" and incident["status"] == "investigating"


def _expect_resolve(result: ActionResult, fake: FakeVendor) -> None:
    assert isinstance(fake, StatuspageFake)
    incident = fake.incidents[result.output["incident_id"]]
    assert incident["status"] == "resolved" and fake.component("API")["status"] == "operational"


CASES: dict[str, tuple[StrictModel, Any]] = {
    "set": (StatuspageSetParams(component="API", status="major_outage"), _expect_set),
    "incident": (StatuspageIncidentParams(body="We are looking into elevated API errors."), _expect_incident),
    "resolve": (StatuspageResolveParams(), _expect_resolve),
}


@pytest.fixture(params=sorted(CASES))
async def case(request: pytest.FixtureRequest, fake: StatuspageFake, deps: ProviderDeps, ctx: StepContext) -> Case:
    params, expect_ok = CASES[request.param]
    provider = make_provider(deps, fake)
    if request.param == "resolve":  # something to resolve, opened by another provider instance
        await open_incident(make_provider(deps, fake), ctx, components={"API": "partial_outage"})
        fake.requests.clear()
    return Case(fake=fake, provider=provider, verb=request.param, params=params, ctx=ctx, expect_ok=expect_ok,
                stall=0.8, secrets=[API_KEY])


@pytest.mark.parametrize("check", CHECKS)
async def test_conformance(check: str, case: Case, caplog: pytest.LogCaptureFixture) -> None:
    await conformance(check, case, caplog)


# -- statuspage.set -------------------------------------------------------------------------------------------
async def test_set_by_name_resolves_once_then_uses_the_cache(provider: StatuspageProvider, fake: StatuspageFake,
                                                             ctx: StepContext) -> None:
    api = fake.component("API")
    result = await provider.run("set", StatuspageSetParams(component="api", status="degraded_performance"), ctx)
    assert api["status"] == "degraded_performance"
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", f"/pages/{PAGE_ID}/components"), ("PATCH", f"/pages/{PAGE_ID}/components/{api['id']}")]
    assert fake.requests[0].query == {"page": "1", "per_page": "100"}
    assert fake.requests[1].json == {"component": {"status": "degraded_performance"}}
    assert fake.requests[1].headers["Authorization"] == f"OAuth {API_KEY}"
    assert result.summary == "Statuspage component API is now degraded_performance"
    assert result.output == {"component_id": api["id"], "component": "API", "status": "degraded_performance"}

    await provider.run("set", StatuspageSetParams(component=api["id"], status="operational"), ctx)
    assert api["status"] == "operational" and len(fake.requests) == 3  # no second GET


async def test_set_pages_through_the_component_list(deps: ProviderDeps, ctx: StepContext) -> None:
    async with StatuspageFake(api_key=API_KEY, page_id=PAGE_ID, components=[f"c{i}" for i in range(150)]) as fake:
        provider = make_provider(deps, fake)
        await provider.run("set", StatuspageSetParams(component="c142", status="partial_outage"), ctx)
        assert fake.component("c142")["status"] == "partial_outage"
        assert [r.query.get("page") for r in fake.calls("GET")] == ["1", "2"]


async def test_set_unknown_component_is_permanent_and_lists_the_known(provider: StatuspageProvider,
                                                                      fake: StatuspageFake, ctx: StepContext) -> None:
    with pytest.raises(PermanentActionError, match=r"no component 'database' on page .*known: API \("):
        await provider.run("set", StatuspageSetParams(component="database", status="major_outage"), ctx)
    assert not fake.calls("PATCH")


async def test_requests_are_spaced_one_second_apart(provider: StatuspageProvider, fake: StatuspageFake,
                                                    ctx: StepContext, deps: ProviderDeps) -> None:
    start = deps.clock.now()
    await asyncio.gather(*(provider.run("set", StatuspageSetParams(component=name, status="major_outage"), ctx)
                           for name in ("API", "Web app", "Background workers")))
    assert len(fake.calls("GET")) == 1 and len(fake.requests) == 4  # the steps share one listing
    assert all(c["status"] == "major_outage" for c in fake.components.values())
    # the fake clock only moves when the provider waits: 1 s before every request but the first
    assert (deps.clock.now() - start).total_seconds() == pytest.approx(len(fake.requests) - 1)


async def test_rate_limited_420_is_retryable(provider: StatuspageProvider, fake: StatuspageFake,
                                             ctx: StepContext) -> None:
    fake.fail_next(420, headers={"Retry-After": "7"}, body='{"message": "Enhance your calm"}')
    with pytest.raises(RetryableActionError, match="HTTP 420") as info:
        await provider.run("set", StatuspageSetParams(component="API", status="major_outage"), ctx)
    assert info.value.retry_after == 7.0


async def test_unknown_page_is_permanent(deps: ProviderDeps, fake: StatuspageFake, ctx: StepContext) -> None:
    provider = make_provider(deps, fake, page_id="nosuchpage00")
    with pytest.raises(PermanentActionError, match="HTTP 404"):
        await provider.run("set", StatuspageSetParams(component="API", status="major_outage"), ctx)


# -- statuspage.incident / resolve ------------------------------------------------------------------------------
async def test_incident_is_opened_once_then_updated(provider: StatuspageProvider, fake: StatuspageFake,
                                                    ctx: StepContext, deps: ProviderDeps) -> None:
    api = fake.component("API")
    first = await open_incident(provider, ctx, body="Investigating elevated API errors.",
                                components={"API": "partial_outage"})
    sp_id = first.output["incident_id"]
    create = fake.calls("POST")[0].json["incident"]
    assert create == {"name": "API error rate above 5%", "status": "investigating",
                      "body": "Investigating elevated API errors.", "deliver_notifications": True,
                      "components": {api["id"]: "partial_outage"}, "component_ids": [api["id"]],
                      "metadata": {"responder": {"incident_id": ctx.incident.id, "url": ctx.incident_url}}}
    assert first.output["created"] is True and first.output["shortlink"].startswith("https://stspg.io/")
    assert first.summary == f"opened Statuspage incident {sp_id} (investigating): API partial_outage"
    assert api["status"] == "partial_outage" and fake.incidents[sp_id]["impact"] == "major"

    second = await open_incident(provider, ctx, status="identified", body="A faulty release; rolling back.",
                                 deliver_notifications=False)
    assert second.output == {**second.output, "incident_id": sp_id, "created": False, "status": "identified"}
    patch = fake.calls("PATCH")[-1]
    assert patch.path == f"/pages/{PAGE_ID}/incidents/{sp_id}"
    assert patch.json == {"incident": {"status": "identified", "body": "A faulty release; rolling back.",
                                       "deliver_notifications": False}}
    assert len(fake.incidents) == 1
    updates = fake.incidents[sp_id]["incident_updates"]
    assert [u["status"] for u in updates] == ["identified", "investigating"]  # newest first
    assert updates[1]["affected_components"] == [{"code": api["id"], "name": "API", "old_status": "operational",
                                                  "new_status": "partial_outage"}]
    state = await deps.state.get(ctx.incident.id, "statuspage")
    assert state["page_incident_id"] == sp_id and state["status"] == "identified" and state["components"] == api["id"]


async def test_concurrent_first_calls_open_one_incident(provider: StatuspageProvider, fake: StatuspageFake,
                                                        ctx: StepContext) -> None:
    results = await asyncio.gather(open_incident(provider, ctx), open_incident(provider, ctx, status="identified"))
    assert len(fake.incidents) == 1 and {r.output["created"] for r in results} == {True, False}


async def test_resolve_restores_the_touched_components(provider: StatuspageProvider, fake: StatuspageFake,
                                                       ctx: StepContext, deps: ProviderDeps) -> None:
    await provider.run("set", StatuspageSetParams(component="Web app", status="degraded_performance"), ctx)
    opened = await open_incident(provider, ctx, components={"API": "major_outage"})
    sp_id = opened.output["incident_id"]

    result = await provider.run("resolve", StatuspageResolveParams(body="Rolled back; error rate is normal."), ctx)
    incident = fake.incidents[sp_id]
    assert incident["status"] == "resolved" and incident["resolved_at"]
    assert incident["incident_updates"][0]["body"] == "Rolled back; error rate is normal."
    assert fake.component("API")["status"] == "operational"
    assert fake.component("Web app")["status"] == "operational"
    assert set(fake.calls("PATCH")[-1].json["incident"]["components"].values()) == {"operational"}
    assert result.summary.startswith(f"resolved Statuspage incident {sp_id}: ")
    assert (await deps.state.get(ctx.incident.id, "statuspage"))["status"] == "resolved"


async def test_resolve_keeps_explicit_component_statuses(provider: StatuspageProvider, fake: StatuspageFake,
                                                         ctx: StepContext) -> None:
    await open_incident(provider, ctx, components={"API": "major_outage", "Web app": "partial_outage"})
    await provider.run("resolve", StatuspageResolveParams(components={"Web app": "degraded_performance"}), ctx)
    assert fake.component("API")["status"] == "operational"
    assert fake.component("Web app")["status"] == "degraded_performance"


async def test_resolve_without_an_incident_sends_nothing(provider: StatuspageProvider, fake: StatuspageFake,
                                                         ctx: StepContext) -> None:
    result = await provider.run("resolve", StatuspageResolveParams(), ctx)
    assert "nothing to resolve" in result.summary and result.output["incident_id"] is None
    assert not fake.requests


async def test_resolve_without_an_incident_still_restores_components(provider: StatuspageProvider,
                                                                      fake: StatuspageFake, ctx: StepContext) -> None:
    await provider.run("set", StatuspageSetParams(component="API", status="major_outage"), ctx)
    result = await provider.run("resolve", StatuspageResolveParams(), ctx)
    assert fake.component("API")["status"] == "operational" and not fake.incidents
    assert "set 1 component(s)" in result.summary


async def test_a_deleted_statuspage_incident_is_opened_again(provider: StatuspageProvider, fake: StatuspageFake,
                                                             ctx: StepContext, deps: ProviderDeps) -> None:
    await deps.state.set(ctx.incident.id, "statuspage", page_incident_id="gone00000000")
    result = await open_incident(provider, ctx, status="monitoring")
    assert result.output["created"] is True and fake.incidents[result.output["incident_id"]]["status"] == "monitoring"
    assert [r.method for r in fake.requests] == ["PATCH", "POST"]
    assert (await deps.state.get(ctx.incident.id, "statuspage"))["page_incident_id"] == result.output["incident_id"]


async def test_resolving_a_deleted_statuspage_incident_restores_components(
        provider: StatuspageProvider, fake: StatuspageFake, ctx: StepContext, deps: ProviderDeps) -> None:
    await open_incident(provider, ctx, components={"API": "major_outage"})
    fake.incidents.clear()
    result = await provider.run("resolve", StatuspageResolveParams(), ctx)
    assert "no longer exists" in result.summary and fake.component("API")["status"] == "operational"


async def test_vendor_validation_error_is_permanent(provider: StatuspageProvider, fake: StatuspageFake,
                                                    ctx: StepContext) -> None:
    fake.fail_next(422, body='{"message": "Status is not included in the list"}')
    with pytest.raises(PermanentActionError, match=r"HTTP 422: .*not included in the list"):
        await open_incident(provider, ctx)


# -- the fake is strict like the real API ------------------------------------------------------------------------
async def test_fake_rejects_invalid_bodies(fake: StatuspageFake, deps: ProviderDeps) -> None:
    headers = {"Authorization": f"OAuth {API_KEY}"}
    api = fake.component("API")

    async def send(method: str, path: str, body: Any) -> tuple[int, Any]:
        async with deps.http.request(method, f"{fake.url}/pages/{PAGE_ID}/{path}", json=body,
                                     headers=headers) as resp:
            return resp.status, await resp.json()

    assert await send("PATCH", f"components/{api['id']}", {"component": {"status": "down"}}) == (
        422, {"message": "Status 'down' is not included in the list"})
    assert (await send("PATCH", f"components/{api['id']}", {"status": "major_outage"}))[0] == 400
    status, body = await send("POST", "incidents", {"incident": {"name": "x", "status": "scheduledd"}})
    assert status == 422 and "not included in the list" in body["message"]
    status, body = await send("POST", "incidents", {"incident": {"status": "investigating"}})
    assert (status, body) == (422, {"message": "Name can't be blank"})
    status, body = await send("POST", "incidents", {"incident": {"name": "x", "components": {"nope": "major_outage"}}})
    assert status == 422
    async with deps.http.get(f"{fake.url}/pages/{PAGE_ID}/components") as resp:
        assert resp.status == 401 and await resp.json() == {"message": "Could not authenticate"}


# -- plan, params, config -----------------------------------------------------------------------------------------
def test_plan(provider: StatuspageProvider, fake: StatuspageFake, ctx: StepContext) -> None:
    [lookup, patch] = provider.plan("set", StatuspageSetParams(component="API", status="major_outage"), ctx)
    assert (lookup.method, lookup.url) == ("GET", f"{fake.url}/pages/{PAGE_ID}/components?page=1&per_page=100")
    assert (patch.method, patch.url) == ("PATCH", f"{fake.url}/pages/{PAGE_ID}/components/<id of component 'API'>")
    assert patch.body == {"component": {"status": "major_outage"}}
    redacted = patch.redacted(provider.secrets())
    assert redacted["headers"]["Authorization"] == "***" and API_KEY not in str(redacted)

    [create] = provider.plan("incident", StatuspageIncidentParams(body="Investigating"), ctx)
    assert (create.method, create.url) == ("POST", f"{fake.url}/pages/{PAGE_ID}/incidents")
    assert create.body["incident"]["name"] == "API error rate above 5%" and "later ones PATCH" in create.note

    [resolve] = provider.plan("resolve", StatuspageResolveParams(), ctx)
    assert resolve.method == "PATCH" and resolve.body["incident"]["status"] == "resolved"
    assert not fake.requests


async def test_plan_uses_known_component_ids(provider: StatuspageProvider, fake: StatuspageFake,
                                             ctx: StepContext) -> None:
    await provider.run("set", StatuspageSetParams(component="API", status="operational"), ctx)
    [patch] = provider.plan("set", StatuspageSetParams(component="API", status="major_outage"), ctx)
    assert patch.url.endswith(f"/components/{fake.component('API')['id']}")


def test_no_remediation(provider: StatuspageProvider) -> None:
    assert provider.remediation("set", StatuspageSetParams(component="API", status="major_outage")) is None
    assert provider.remediation("incident", StatuspageIncidentParams()) is None
    assert provider.remediation("resolve", StatuspageResolveParams()) is None


def test_params_validation() -> None:
    with pytest.raises(ValidationError):
        StatuspageSetParams.model_validate({"component": "API", "status": "down"})
    with pytest.raises(ValidationError):
        StatuspageSetParams.model_validate({"status": "operational"})
    with pytest.raises(ValidationError):
        StatuspageIncidentParams.model_validate({"status": "scheduled"})
    with pytest.raises(ValidationError):
        StatuspageIncidentParams.model_validate({"components": {"API": "broken"}})
    with pytest.raises(ValidationError):
        StatuspageIncidentParams.model_validate({"name": "x" * 256})
    with pytest.raises(ValidationError):
        StatuspageResolveParams.model_validate({"status": "resolved"})


def test_config() -> None:
    assert not StatuspageConfig(api_key=API_KEY).has_credentials()  # no page
    config = StatuspageConfig(api_key=API_KEY, page_id=PAGE_ID)
    assert config.has_credentials() and config.base_url == "https://api.statuspage.io/v1"
    assert config.min_interval.total_seconds() == 1
