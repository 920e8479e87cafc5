"""railway.rollback / restart / redeploy against RailwayFake (Railway's GraphQL shapes)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from responder.actions.base import ActionResult, ProviderDeps, Remediation, StepContext, call_once
from responder.actions.railway import (
    RailwayConfig,
    RailwayProvider,
    RailwayRedeployParams,
    RailwayRestartParams,
    RailwayRollbackParams,
)
from responder.errors import PermanentActionError, RetryableActionError
from tests.actions.conformance import CHECKS, Case, conformance
from tests.fakes.railway import RailwayFake
from tests.fakes.vendor import FakeVendor

TOKEN = "rw-t0k3n-secret-4242"


@pytest.fixture
async def fake() -> AsyncIterator[RailwayFake]:
    fake = RailwayFake(token=TOKEN)
    await fake.start()
    yield fake
    await fake.close()


def provider(deps: ProviderDeps, fake: RailwayFake, **config: Any) -> RailwayProvider:
    settings: dict[str, Any] = {"token": TOKEN, "project_id": fake.project_id, "base_url": fake.endpoint,
                                "timeout": "300ms", **config}
    return RailwayProvider(RailwayConfig.model_validate(settings), deps)


def seed(fake: RailwayFake) -> dict[str, str]:
    """api in production: v1 ran fine, v2 can no longer be rolled back to, v3 failed, v4 is live, v5 is building."""
    ids = {"v1": fake.add_deployment("api", status="REMOVED", meta={"commitHash": "aaa111"}),
           "v2": fake.add_deployment("api", status="REMOVED", can_rollback=False, meta={"commitHash": "bbb222"}),
           "v3": fake.add_deployment("api", status="FAILED", meta={"commitHash": "ccc333"}),
           "v4": fake.add_deployment("api", status="SUCCESS", meta={"commitHash": "ddd444"}),
           "v5": fake.add_deployment("api", status="BUILDING", meta={"commitHash": "eee555"})}
    fake.add_deployment("api", "staging", status="SUCCESS")
    fake.add_deployment("worker", status="SUCCESS")
    return ids


async def once(p: RailwayProvider, params: Any, ctx: StepContext) -> ActionResult:
    return await call_once(p, _verb(params), params, ctx, 10)


def _verb(params: Any) -> str:
    return {RailwayRollbackParams: "rollback", RailwayRestartParams: "restart",
            RailwayRedeployParams: "redeploy"}[type(params)]


# -- conformance -------------------------------------------------------------------------------------------
def _expect_rollback(ids: dict[str, str]) -> Any:
    def check(result: ActionResult, fake: FakeVendor) -> None:
        assert isinstance(fake, RailwayFake)
        assert fake.mutations == [("deploymentRollback", {"id": ids["v1"]})]
        assert result.output["to_deployment_id"] == ids["v1"]
    return check


def _expect_restart(ids: dict[str, str]) -> Any:
    def check(result: ActionResult, fake: FakeVendor) -> None:
        assert isinstance(fake, RailwayFake)
        assert fake.restarts == {ids["v4"]: 1}
    return check


def _expect_redeploy(ids: dict[str, str]) -> Any:
    def check(result: ActionResult, fake: FakeVendor) -> None:
        assert isinstance(fake, RailwayFake)
        assert fake.mutations == [("deploymentRedeploy", {"id": ids["v4"], "usePreviousImageTag": False})]
        assert result.output["deployment_id"] in fake.deployments
    return check


VERBS = {"rollback": (RailwayRollbackParams, _expect_rollback), "restart": (RailwayRestartParams, _expect_restart),
         "redeploy": (RailwayRedeployParams, _expect_redeploy)}


@pytest.mark.parametrize("verb", sorted(VERBS))
@pytest.mark.parametrize("check", CHECKS)
async def test_conformance(check: str, verb: str, deps: ProviderDeps, fake: RailwayFake, ctx: StepContext,
                           caplog: pytest.LogCaptureFixture) -> None:
    ids = seed(fake)
    params_cls, expect = VERBS[verb]
    case = Case(fake=fake, provider=provider(deps, fake), verb=verb, params=params_cls(service="api"), ctx=ctx,
                expect_ok=expect(ids), stall=0.6, secrets=[TOKEN])
    await conformance(check, case, caplog)


# -- rollback ----------------------------------------------------------------------------------------------
async def test_rollback_picks_the_previous_successful_deployment(deps: ProviderDeps, fake: RailwayFake,
                                                                 ctx: StepContext) -> None:
    ids = seed(fake)
    result = await once(provider(deps, fake), RailwayRollbackParams(service="api"), ctx)
    # v5 is building, v4 is live, v3 failed, v2 is past retention: v1 it is
    assert fake.mutations == [("deploymentRollback", {"id": ids["v1"]})]
    assert result.output["from_deployment_id"] == ids["v4"]
    assert result.output["to_deployment_id"] == ids["v1"]
    assert result.output["service_id"] == fake.service("api")
    assert result.output["environment_id"] == fake.environment("production")
    assert result.summary == f"rolled back api (production) to deployment {ids['v1'][:8]}… (was {ids['v4'][:8]}…)"
    live = fake.active("api")
    assert live is not None and live.meta == {"commitHash": "aaa111"}
    assert fake.deployments[ids["v4"]].status == "REMOVED"
    staging = fake.active("api", "staging")
    assert staging is not None and staging.status == "SUCCESS"  # other environments untouched
    rollback = fake.calls("POST", "/graphql/v2")[-1]
    assert rollback.headers["Idempotency-Key"] == ctx.idempotency_key
    assert rollback.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_rollback_from_a_crashed_deployment(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    good = fake.add_deployment("api", status="REMOVED")
    crashed = fake.add_deployment("api", status="CRASHED")
    result = await once(provider(deps, fake), RailwayRollbackParams(service="api"), ctx)
    assert (result.output["from_deployment_id"], result.output["to_deployment_id"]) == (crashed, good)


async def test_rollback_without_a_previous_deployment_is_permanent(deps: ProviderDeps, fake: RailwayFake,
                                                                   ctx: StepContext) -> None:
    fake.add_deployment("api", status="FAILED")
    only = fake.add_deployment("api", status="SUCCESS")
    with pytest.raises(PermanentActionError) as info:
        await once(provider(deps, fake), RailwayRollbackParams(service="api"), ctx)
    message = str(info.value)
    assert "no previous successful deployment of api (production)" in message
    assert f"active: {only[:8]}" in message and "deployment_id" in message
    assert fake.mutations == []


async def test_a_retry_reuses_the_first_choice(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    """After a lost response the step runs again: it must not roll 'back' onto the deployment it replaced."""
    ids = seed(fake)
    p = provider(deps, fake)
    await once(p, RailwayRollbackParams(service="api"), ctx)
    live = fake.active("api")
    assert live is not None
    # now v4 (the bad one) is the newest REMOVED deployment older than the live copy of v1
    second = await once(p, RailwayRollbackParams(service="api"), ctx)
    assert [m[1]["id"] for m in fake.mutations] == [ids["v1"], ids["v1"]]
    assert second.output["from_deployment_id"] == ids["v4"]
    stored = await deps.state.get(ctx.incident.id, "railway")
    assert json.loads(stored[f"rollback:{ctx.idempotency_key}"]) == {"from": ids["v4"], "to": ids["v1"]}
    # another step (or run) chooses afresh: the copy of v1 that the second attempt replaced
    other = dataclasses.replace(ctx, step="rollback again")
    third = await once(p, RailwayRollbackParams(service="api"), other)
    assert third.output["to_deployment_id"] == live.id


async def test_rollback_to_a_given_deployment(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    ids = seed(fake)
    result = await once(provider(deps, fake), RailwayRollbackParams(service="api", deployment_id=ids["v3"]), ctx)
    assert fake.mutations == [("deploymentRollback", {"id": ids["v3"]})]
    assert result.output == {"service": "api", "service_id": fake.service("api"), "environment": "production",
                             "environment_id": fake.environment("production"), "from_deployment_id": ids["v4"],
                             "to_deployment_id": ids["v3"]}


@pytest.mark.parametrize(("which", "expected"), [
    ("v2", "canRollback is false"),
    ("v4", "already the active deployment"),
    ("worker", r"is not a deployment of api \(production\)"),
    ("unknown", "Deployment not found"),
])
async def test_rollback_to_a_given_deployment_is_checked(which: str, expected: str, deps: ProviderDeps,
                                                         fake: RailwayFake, ctx: StepContext) -> None:
    ids = seed(fake)
    ids["worker"] = fake.history("worker")[0].id
    ids["unknown"] = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(PermanentActionError, match=expected):
        await once(provider(deps, fake), RailwayRollbackParams(service="api", deployment_id=ids[which]), ctx)
    assert fake.mutations == []


# -- restart and redeploy ----------------------------------------------------------------------------------
async def test_restart_restarts_the_active_deployment(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    fake.add_deployment("sync-worker", status="REMOVED")
    crashed = fake.add_deployment("sync-worker", status="CRASHED")
    fake.add_deployment("sync-worker", status="FAILED")
    result = await once(provider(deps, fake), RailwayRestartParams(service="sync-worker"), ctx)
    assert fake.mutations == [("deploymentRestart", {"id": crashed})]
    assert fake.restarts == {crashed: 1} and fake.deployments[crashed].status == "SUCCESS"
    assert result.summary == f"restarted sync-worker (production) deployment {crashed[:8]}… (crashed)"
    assert result.output["deployment_id"] == crashed and result.output["previous_status"] == "CRASHED"


async def test_nothing_to_restart_is_permanent(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    fake.add_deployment("api", status="FAILED")
    with pytest.raises(PermanentActionError, match=r"api \(production\) has no active deployment to restart"):
        await once(provider(deps, fake), RailwayRestartParams(service="api"), ctx)


async def test_redeploy(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    ids = seed(fake)
    result = await once(provider(deps, fake), RailwayRedeployParams(service="api", use_previous_image=True), ctx)
    assert fake.mutations == [("deploymentRedeploy", {"id": ids["v4"], "usePreviousImageTag": True})]
    new = result.output["deployment_id"]
    assert fake.deployments[new].status == "BUILDING" and fake.deployments[new].meta == {"commitHash": "ddd444"}
    assert result.output["from_deployment_id"] == ids["v4"] and result.output["status"] == "BUILDING"
    assert result.summary.startswith(f"redeployed api (production): new deployment {new[:8]}")


# -- targets -----------------------------------------------------------------------------------------------
async def test_names_are_resolved_ignoring_case(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    ids = seed(fake)
    result = await once(provider(deps, fake), RailwayRestartParams(service="API", environment="Production"), ctx)
    assert result.output["deployment_id"] == ids["v4"] and result.output["service"] == "api"
    assert fake.operations == ["project", "deployments", "deploymentRestart"]


async def test_unknown_service_names_the_known_ones(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    seed(fake)
    with pytest.raises(PermanentActionError, match=r"no service 'apii' in project .* \(services: api, worker\)"):
        await once(provider(deps, fake), RailwayRestartParams(service="apii"), ctx)


async def test_ids_work_without_a_project(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    ids = seed(fake)
    p = provider(deps, fake, project_id=None)
    params = RailwayRestartParams(service=fake.service("api"), environment=fake.environment("production"))
    result = await once(p, params, ctx)
    assert result.output["deployment_id"] == ids["v4"]
    assert fake.operations == ["deployments", "deploymentRestart"]
    # an environment name is found through the service's project
    fake.operations.clear()
    await once(p, RailwayRestartParams(service=fake.service("api")), ctx)
    assert fake.operations == ["service", "project", "deployments", "deploymentRestart"]


async def test_a_service_name_needs_the_project(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    with pytest.raises(PermanentActionError, match=r"set providers\.railway\.project_id"):
        await once(provider(deps, fake, project_id=None), RailwayRestartParams(service="api"), ctx)
    assert fake.requests == []


async def test_project_token_header(deps: ProviderDeps, ctx: StepContext) -> None:
    fake = RailwayFake(token=TOKEN, token_header="Project-Access-Token")
    await fake.start()
    try:
        ids = seed(fake)
        await once(provider(deps, fake, token_type="project"), RailwayRestartParams(service="api"), ctx)
        assert fake.restarts == {ids["v4"]: 1}
        assert "Authorization" not in fake.requests[0].headers
    finally:
        await fake.close()


# -- GraphQL errors (HTTP 200 with `errors`) ---------------------------------------------------------------
async def test_a_refused_token_is_permanent(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    seed(fake)
    with pytest.raises(PermanentActionError) as info:
        await once(provider(deps, fake, token="wr0ng-t0ken-123"), RailwayRollbackParams(service="api"), ctx)
    message = str(info.value)
    assert "Not Authorized" in message and "providers.railway" in message and "wr0ng" not in message
    assert fake.requests[0].text  # it did ask, and Railway said 200 + errors
    assert fake.mutations == []


async def test_a_graphql_rate_limit_is_retryable(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    seed(fake)
    fake.fail_graphql("Rate limit exceeded", code="RATE_LIMITED", headers={"Retry-After": "7"})
    with pytest.raises(RetryableActionError) as info:
        await once(provider(deps, fake), RailwayRestartParams(service="api"), ctx)
    assert info.value.retry_after == 7.0 and "rate limited" in str(info.value)
    await once(provider(deps, fake), RailwayRestartParams(service="api"), ctx)


async def test_other_graphql_errors_are_permanent(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    seed(fake)
    fake.fail_graphql(f"Problem processing request for {TOKEN}")
    with pytest.raises(PermanentActionError) as info:
        await once(provider(deps, fake), RailwayRestartParams(service="api"), ctx)
    assert "railway: project: Problem processing request" in str(info.value)
    assert TOKEN not in str(info.value)


async def test_the_fake_rejects_malformed_requests(deps: ProviderDeps, fake: RailwayFake) -> None:
    async with deps.http.post(fake.endpoint, json={"query": "query Q($id: String!) { deployment(id: $id) { id } }"},
                              headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 400
        assert "was not provided" in (await response.json())["errors"][0]["message"]
    async with deps.http.post(fake.endpoint, json={"query": "query { deploymentz { id } }"},
                              headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 400


# -- dry-run, budget, params -------------------------------------------------------------------------------
def test_plan_shows_the_graphql_calls(deps: ProviderDeps, ctx: StepContext) -> None:
    p = RailwayProvider(RailwayConfig(token=TOKEN, project_id="5f1e0000-0000-4000-8000-000000000001"), deps)
    calls = p.plan("rollback", RailwayRollbackParams(service="api"), ctx)
    assert [c.url for c in calls] == ["https://backboard.railway.com/graphql/v2"] * 3
    assert [c.method for c in calls] == ["POST"] * 3
    project, listing, rollback = calls
    assert "project(id: $id)" in project.body["query"]
    assert project.body["variables"] == {"id": "5f1e0000-0000-4000-8000-000000000001"}
    assert listing.body["variables"]["input"]["serviceId"] == "<id of service api>"
    assert listing.body["variables"]["input"]["environmentId"] == "<id of environment production>"
    assert rollback.body == {"query": "mutation DeploymentRollback($id: String!) { deploymentRollback(id: $id) }",
                             "variables": {"id": "<previous successful deployment>"}}
    assert rollback.headers["Idempotency-Key"] == ctx.idempotency_key
    redacted = [c.redacted(p.secrets()) for c in calls]
    assert TOKEN not in json.dumps(redacted) and TOKEN not in repr(calls)
    assert redacted[0]["headers"]["Authorization"] == "***"


async def test_plan_matches_what_run_sends(deps: ProviderDeps, fake: RailwayFake, ctx: StepContext) -> None:
    ids = seed(fake)
    p = provider(deps, fake)
    for verb, params in (("restart", RailwayRestartParams(service="api")),
                         ("redeploy", RailwayRedeployParams(service="api")),
                         ("rollback", RailwayRollbackParams(service="api", deployment_id=ids["v1"])),
                         ("rollback", RailwayRollbackParams(service="api"))):
        fake.requests.clear()
        step = dataclasses.replace(ctx, step=f"{verb} {len(fake.mutations)}")
        planned = p.plan(verb, params, step)
        await once(p, params, step)
        assert [(r.method, fake.url + r.path, r.json["query"]) for r in fake.requests] == \
            [(c.method, c.url, c.body["query"]) for c in planned]


def test_plan_without_credentials_and_with_a_deployment_id(deps: ProviderDeps, ctx: StepContext) -> None:
    p = RailwayProvider(RailwayConfig(), deps)  # a planner: providers.railway is not configured
    calls = p.plan("rollback", RailwayRollbackParams(service="api", deployment_id="d-1"), ctx)
    assert "project_id is needed" in calls[0].note
    assert calls[-2].body["variables"] == {"id": "d-1"} and "deployment(id: $id)" in calls[-2].body["query"]
    assert calls[-1].body["variables"] == {"id": "d-1"}
    restart = p.plan("restart", RailwayRestartParams(service="a" * 8 + "-0000-4000-8000-" + "0" * 12,
                                                     environment="b" * 8 + "-0000-4000-8000-" + "0" * 12), ctx)
    assert [c.body["query"].split("(")[0] for c in restart] == ["query Deployments", "mutation DeploymentRestart"]
    redeploy = p.plan("redeploy", RailwayRedeployParams(service="api", use_previous_image=True), ctx)
    assert redeploy[-1].body["variables"] == {"id": "<active deployment>", "usePreviousImageTag": True}


def test_remediation(deps: ProviderDeps) -> None:
    p = RailwayProvider(RailwayConfig(token=TOKEN), deps)
    assert p.remediation("rollback", RailwayRollbackParams(service="api")) == Remediation("rollback",
                                                                                        "railway:api@production")
    assert p.remediation("restart", RailwayRestartParams(service="w", environment="staging")) == \
        Remediation("restart", "railway:w@staging")
    assert p.remediation("redeploy", RailwayRedeployParams(service="api")) == Remediation("redeploy",
                                                                                        "railway:api@production")


@pytest.mark.parametrize(("params", "field"), [
    ({}, "service"),
    ({"service": ""}, "service"),
    ({"service": "api", "enviroment": "prod"}, "enviroment"),
    ({"service": "api", "deployment_id": 42}, "deployment_id"),
])
def test_params_are_validated(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RailwayRollbackParams.model_validate(params)
    assert field in str(info.value)
    assert set(RailwayProvider.action_names()) == {"railway.rollback", "railway.restart", "railway.redeploy"}
    for model in RailwayProvider.actions.values():
        assert all(f.description for f in model.model_fields.values())
