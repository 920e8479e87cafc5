"""vercel.rollback / vercel.promote against VercelFake (Vercel's REST shapes)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from responder.actions.base import ActionResult, ProviderDeps, Remediation, StepContext, call_once
from responder.actions.vercel import VercelConfig, VercelPromoteParams, VercelProvider, VercelRollbackParams
from responder.clock import FakeClock
from responder.errors import PermanentActionError, RetryableActionError
from tests.actions.conformance import CHECKS, Case, conformance
from tests.fakes.vendor import FakeVendor
from tests.fakes.vercel import VercelFake

TOKEN = "vc-t0k3n-secret-8181"


@pytest.fixture
async def fake() -> AsyncIterator[VercelFake]:
    fake = VercelFake(token=TOKEN)
    await fake.start()
    yield fake
    await fake.close()


def provider(deps: ProviderDeps, fake: VercelFake, **config: Any) -> VercelProvider:
    settings: dict[str, Any] = {"token": TOKEN, "base_url": fake.url, "timeout": "300ms", **config}
    return VercelProvider(VercelConfig.model_validate(settings), deps)


def seed(fake: VercelFake) -> dict[str, str]:
    """checkout: v1 good, v2 not offered for rollback, v3 failed, v4 a preview, v5 staged, v6 live, v7 newer."""
    ids = {"v1": fake.add_deployment("checkout", meta={"githubCommitSha": "aaa111"}),
           "v2": fake.add_deployment("checkout", rollback_candidate=False),
           "v3": fake.add_deployment("checkout", state="ERROR"),
           "v4": fake.add_deployment("checkout", target=None),
           "v5": fake.add_deployment("checkout", staged=True),
           "v6": fake.add_deployment("checkout", current=True),
           "v7": fake.add_deployment("checkout")}
    fake.add_deployment("blog", current=True)
    return ids


async def once(p: VercelProvider, params: Any, ctx: StepContext) -> ActionResult:
    verb = "rollback" if isinstance(params, VercelRollbackParams) else "promote"
    return await call_once(p, verb, params, ctx, 10)


# -- conformance -------------------------------------------------------------------------------------------
def _expect(kind: str, target: str) -> Any:
    def check(result: ActionResult, fake: FakeVendor) -> None:
        assert isinstance(fake, VercelFake)
        assert [(c[0], c[2]) for c in fake.changes] == [(kind, target)]
        assert fake.current("checkout") == target and result.output["to_deployment_id"] == target
    return check


@pytest.mark.parametrize("verb", ["rollback", "promote"])
@pytest.mark.parametrize("check", CHECKS)
async def test_conformance(check: str, verb: str, deps: ProviderDeps, fake: VercelFake, ctx: StepContext,
                           caplog: pytest.LogCaptureFixture) -> None:
    ids = seed(fake)
    params: Any = (VercelRollbackParams(project="checkout") if verb == "rollback"
                   else VercelPromoteParams(project="checkout", deployment=ids["v7"]))
    target = ids["v1"] if verb == "rollback" else ids["v7"]
    case = Case(fake=fake, provider=provider(deps, fake), verb=verb, params=params, ctx=ctx,
                expect_ok=_expect(verb, target), stall=0.6, secrets=[TOKEN])
    await conformance(check, case, caplog)


# -- rollback ----------------------------------------------------------------------------------------------
async def test_rollback_to_the_previous_production_deployment(deps: ProviderDeps, fake: VercelFake,
                                                               ctx: StepContext) -> None:
    ids = seed(fake)
    result = await once(provider(deps, fake), VercelRollbackParams(project="checkout"), ctx)
    # v7 is newer than the live v6, v5 never served production, v4 is a preview, v3 failed, v2 is not offered
    project_id = fake.project("checkout").id
    assert fake.changes == [("rollback", project_id, ids["v1"],
                             {"description": "responder: incident 1: API error rate above 5%"})]
    assert fake.current("checkout") == ids["v1"] and fake.current("blog") is not None
    assert result.output == {"project": "checkout", "project_id": project_id, "from_deployment_id": ids["v6"],
                             "to_deployment_id": ids["v1"], "to_url": fake.deployments[ids["v1"]].url,
                             "job_status": "succeeded"}
    assert result.summary == (f"rolled back checkout production to deployment {ids['v1'][:12]}… "
                              f"(was {ids['v6'][:12]}…)")
    post = fake.calls("POST")[0]
    assert post.path == f"/v1/projects/{project_id}/rollback/{ids['v1']}"
    assert post.headers["Idempotency-Key"] == ctx.idempotency_key
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"
    listing = fake.calls("GET", "/v6/deployments")[0]
    assert listing.query == {"projectId": project_id, "target": "production", "state": "READY", "limit": "20"}


async def test_rollback_to_a_given_deployment_url(deps: ProviderDeps, fake: VercelFake, ctx: StepContext) -> None:
    ids = seed(fake)
    url = f"https://{fake.deployments[ids['v2']].url}/"
    result = await once(provider(deps, fake), VercelRollbackParams(project="checkout", deployment=url,
                                                                   reason="INC-7 latency"), ctx)
    assert fake.changes[0][2:] == (ids["v2"], {"description": "INC-7 latency"})
    assert result.output["to_deployment_id"] == ids["v2"]
    assert fake.calls("GET", f"/v13/deployments/{fake.deployments[ids['v2']].url}")


@pytest.mark.parametrize(("which", "expected"), [
    ("v3", "is ERROR, not READY"),
    ("v4", "is a preview deployment"),
    ("blog", "belongs to another project"),
    ("dpl_missing", "HTTP 404"),
])
async def test_a_given_deployment_is_checked(which: str, expected: str, deps: ProviderDeps, fake: VercelFake,
                                             ctx: StepContext) -> None:
    ids = seed(fake)
    ids["blog"] = fake.project("blog").current or ""
    with pytest.raises(PermanentActionError, match=expected):
        await once(provider(deps, fake), VercelRollbackParams(project="checkout", deployment=ids.get(which, which)),
                   ctx)
    assert fake.changes == []


async def test_no_previous_deployment_is_permanent(deps: ProviderDeps, fake: VercelFake, ctx: StepContext) -> None:
    fake.add_deployment("checkout", state="ERROR")
    fake.add_deployment("checkout", current=True)
    with pytest.raises(PermanentActionError, match="no previous production deployment of checkout"):
        await once(provider(deps, fake), VercelRollbackParams(project="checkout"), ctx)
    assert fake.changes == []


async def test_unknown_project_is_permanent(deps: ProviderDeps, fake: VercelFake, ctx: StepContext) -> None:
    with pytest.raises(PermanentActionError, match=r"HTTP 404.*Project not found"):
        await once(provider(deps, fake), VercelRollbackParams(project="nope"), ctx)


async def test_a_deployment_already_serving_is_not_asked_again(deps: ProviderDeps, fake: VercelFake,
                                                                ctx: StepContext) -> None:
    ids = seed(fake)
    result = await once(provider(deps, fake), VercelPromoteParams(project="checkout", deployment=ids["v6"]), ctx)
    assert fake.changes == [] and result.output["job_status"] == "succeeded"
    assert result.summary == f"checkout production already serves deployment {ids['v6'][:12]}…"


async def test_a_slow_job_is_retried_without_asking_twice(deps: ProviderDeps, fake: VercelFake, ctx: StepContext,
                                                           clock: FakeClock) -> None:
    ids = seed(fake)
    fake.job_status = "in-progress"
    p = provider(deps, fake)
    started = clock.now()
    with pytest.raises(RetryableActionError, match=r"still in-progress after 10s"):
        await once(p, VercelRollbackParams(project="checkout", wait="10s"), ctx)
    assert (clock.now() - started).total_seconds() >= 10  # polled on the fake clock
    # the runner tries again while Vercel is still at it: no second request, just more waiting
    with pytest.raises(RetryableActionError):
        await once(p, VercelRollbackParams(project="checkout", wait="4s"), ctx)
    assert len(fake.changes) == 1
    fake.finish_job("checkout")
    result = await once(p, VercelRollbackParams(project="checkout", wait="4s"), ctx)
    assert len(fake.changes) == 1 and fake.current("checkout") == ids["v1"]
    assert result.output["to_deployment_id"] == ids["v1"] and result.output["from_deployment_id"] == ids["v6"]
    stored = await deps.state.get(ctx.incident.id, "vercel")
    assert json.loads(stored[f"rollback:{ctx.idempotency_key}"])["to"] == ids["v1"]


async def test_a_failed_job_is_permanent(deps: ProviderDeps, fake: VercelFake, ctx: StepContext) -> None:
    seed(fake)
    fake.job_status = "failed"
    with pytest.raises(PermanentActionError, match="did not move the production domains"):
        await once(provider(deps, fake), VercelRollbackParams(project="checkout"), ctx)


async def test_without_waiting(deps: ProviderDeps, fake: VercelFake, ctx: StepContext) -> None:
    ids = seed(fake)
    fake.job_status = "pending"
    result = await once(provider(deps, fake), VercelRollbackParams(project="checkout", wait="0s"), ctx)
    assert result.output["job_status"] == "requested" and fake.changes[0][2] == ids["v1"]
    assert "Vercel accepted, job requested" in result.summary
    assert [r.method for r in fake.requests] == ["GET", "GET", "POST"]


# -- promote -----------------------------------------------------------------------------------------------
async def test_promote_undoes_a_rollback(deps: ProviderDeps, fake: VercelFake, ctx: StepContext) -> None:
    ids = seed(fake)
    p = provider(deps, fake)
    await once(p, VercelRollbackParams(project="checkout"), ctx)
    fake.promote_status = 202  # Vercel may finish a promote asynchronously
    result = await once(p, VercelPromoteParams(project="checkout", deployment=ids["v7"]),
                        dataclasses.replace(ctx, step="promote"))
    assert [c[0] for c in fake.changes] == ["rollback", "promote"]
    assert fake.current("checkout") == ids["v7"]
    assert fake.calls("POST")[-1].path == f"/v10/projects/{fake.project('checkout').id}/promote/{ids['v7']}"
    assert result.summary == (f"promoted deployment {ids['v7'][:12]}… to checkout production "
                              f"(was {ids['v1'][:12]}…)")


async def test_preview_deployments_are_not_promoted(deps: ProviderDeps, fake: VercelFake, ctx: StepContext) -> None:
    ids = seed(fake)
    with pytest.raises(PermanentActionError, match="preview deployment"):
        await once(provider(deps, fake), VercelPromoteParams(project="checkout", deployment=ids["v4"]), ctx)


# -- scope, rate limits ------------------------------------------------------------------------------------
async def test_team_scope(deps: ProviderDeps, ctx: StepContext) -> None:
    fake = VercelFake(token=TOKEN, team_id="team_acme")
    await fake.start()
    try:
        ids = seed(fake)
        await once(provider(deps, fake, team_id="team_acme"), VercelRollbackParams(project="checkout"), ctx)
        assert fake.current("checkout") == ids["v1"]
        assert all(r.query.get("teamId") == "team_acme" for r in fake.requests)
        with pytest.raises(PermanentActionError, match="HTTP 404"):  # the project is not in the token's own scope
            await once(provider(deps, fake), VercelRollbackParams(project="checkout"),
                       dataclasses.replace(ctx, step="other"))
    finally:
        await fake.close()


async def test_a_refused_token(deps: ProviderDeps, fake: VercelFake, ctx: StepContext) -> None:
    seed(fake)
    with pytest.raises(PermanentActionError) as info:
        await once(provider(deps, fake, token="wr0ng-t0ken-456"), VercelRollbackParams(project="checkout"), ctx)
    assert "HTTP 403, the credentials were refused (check providers.vercel" in str(info.value)


async def test_rate_limit_reset_header(deps: ProviderDeps, fake: VercelFake, ctx: StepContext,
                                       clock: FakeClock) -> None:
    seed(fake)
    fake.fail_next(429, headers={"X-RateLimit-Reset": str(int(clock.now().timestamp()) + 30)},
                   body='{"error": {"code": "rate_limited", "message": "Rate limit exceeded"}}')
    with pytest.raises(RetryableActionError) as info:
        await once(provider(deps, fake), VercelRollbackParams(project="checkout"), ctx)
    assert info.value.retry_after == 30.0


# -- dry-run, budget, params -------------------------------------------------------------------------------
def test_plan(deps: ProviderDeps, ctx: StepContext) -> None:
    p = VercelProvider(VercelConfig(token=TOKEN, team_id="team_acme"), deps)
    calls = p.plan("rollback", VercelRollbackParams(project="checkout"), ctx)
    assert [(c.method, urlsplit(c.url).path) for c in calls] == [
        ("GET", "/v9/projects/checkout"), ("GET", "/v6/deployments"),
        ("POST", "/v1/projects/<id of project checkout>/rollback/<previous production deployment>"),
        ("GET", "/v9/projects/<id of project checkout>")]
    assert all(c.url.startswith("https://api.vercel.com/") for c in calls)
    assert all(parse_qs(urlsplit(c.url).query)["teamId"] == ["team_acme"] for c in calls)
    assert parse_qs(urlsplit(calls[1].url).query)["state"] == ["READY"]
    assert parse_qs(urlsplit(calls[2].url).query)["description"] == ["responder: incident 1: API error rate above 5%"]
    assert calls[2].body == {} and calls[2].headers["Idempotency-Key"] == ctx.idempotency_key
    redacted = [c.redacted(p.secrets()) for c in calls]
    assert TOKEN not in json.dumps(redacted) and TOKEN not in repr(calls)
    planner = VercelProvider(VercelConfig(), deps)  # providers.vercel is not configured: it can still plan
    promote = planner.plan("promote", VercelPromoteParams(project="checkout", deployment="https://checkout-abc.vercel.app",
                                                          wait="0s"), ctx)
    assert [urlsplit(c.url).path for c in promote] == [
        "/v9/projects/checkout", "/v13/deployments/checkout-abc.vercel.app",
        "/v10/projects/<id of project checkout>/promote/<id of deployment https://checkout-abc.vercel.app>"]


async def test_plan_matches_what_run_sends(deps: ProviderDeps, fake: VercelFake, ctx: StepContext) -> None:
    ids = seed(fake)
    p = provider(deps, fake)
    for verb, params in (("rollback", VercelRollbackParams(project="checkout")),
                         ("promote", VercelPromoteParams(project="checkout", deployment=ids["v7"]))):
        fake.requests.clear()
        step = dataclasses.replace(ctx, step=verb)
        planned = p.plan(verb, params, step)
        await once(p, params, step)
        assert [r.method for r in fake.requests] == [c.method for c in planned]
        assert [r.path.split("/")[1:3] for r in fake.requests] == \
            [urlsplit(c.url).path.split("/")[1:3] for c in planned]


def test_remediation(deps: ProviderDeps) -> None:
    p = VercelProvider(VercelConfig(token=TOKEN), deps)
    assert p.remediation("rollback", VercelRollbackParams(project="checkout")) == Remediation("rollback",
                                                                                           "vercel:checkout")
    assert p.remediation("promote", VercelPromoteParams(project="checkout", deployment="dpl_1")) == \
        Remediation("promote", "vercel:checkout")


@pytest.mark.parametrize(("model", "params", "field"), [
    (VercelRollbackParams, {}, "project"),
    (VercelRollbackParams, {"project": "checkout", "wait": "soon"}, "wait"),
    (VercelRollbackParams, {"project": "checkout", "deploymnet": "dpl_1"}, "deploymnet"),
    (VercelPromoteParams, {"project": "checkout"}, "deployment"),
])
def test_params_are_validated(model: Any, params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(params)
    assert field in str(info.value)
    assert set(VercelProvider.action_names()) == {"vercel.rollback", "vercel.promote"}
    for params_model in VercelProvider.actions.values():
        assert all(f.description for f in params_model.model_fields.values())
