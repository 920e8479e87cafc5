"""fly.restart and fly.rollback against FlyFake (Machines API + GraphQL release history)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from responder.actions.base import ActionResult, ProviderDeps, Remediation, StepContext
from responder.actions.fly import FlyConfig, FlyProvider, FlyRestartParams, FlyRollbackParams
from responder.errors import PermanentActionError, RetryableActionError
from tests.actions.conformance import CHECKS, Case, conformance
from tests.fakes.fly import FlyFake
from tests.fakes.vendor import FakeVendor

TOKEN = "fly-t0k3n-very-secret"
REG = "registry.fly.io/checkout-api"
OLD, BAD, NEW = f"{REG}:deployment-01A", f"{REG}:deployment-01B", f"{REG}:deployment-01C"


@pytest.fixture
async def fake() -> AsyncIterator[FlyFake]:
    async with FlyFake(token=TOKEN) as server:
        assert isinstance(server, FlyFake)
        # v1 OLD (good), v2 BAD-start (failed, never ran), v3 NEW (what the Machines run now)
        server.add_release("checkout-api", 1, OLD)
        server.add_release("checkout-api", 2, BAD, status="failed")
        server.add_release("checkout-api", 3, NEW)
        server.add_machine("checkout-api", "web1", image=NEW, group="app")
        server.add_machine("checkout-api", "wrk1", image=NEW, group="worker")
        server.add_machine("checkout-api", "wrk2", image=NEW, group="worker", region="fra")
        server.add_machine("checkout-api", "wrk3", image=NEW, group="worker", state="stopped")
        yield server


def make_provider(fake: FakeVendor, deps: ProviderDeps, token: str = TOKEN, timeout: str = "1s") -> FlyProvider:
    config = FlyConfig.model_validate({"token": token, "base_url": fake.url, "graphql_url": f"{fake.url}/graphql",
                                       "timeout": timeout})
    return FlyProvider(config, deps)


@pytest.fixture
def provider(fake: FlyFake, deps: ProviderDeps) -> FlyProvider:
    return make_provider(fake, deps)


def worker_restart(fake: FlyFake) -> FlyRestartParams:
    return FlyRestartParams(app="checkout-api", process_group="worker")


# -- conformance ---------------------------------------------------------------------------------------
def _restarted(result: ActionResult, fake: FakeVendor) -> None:
    assert isinstance(fake, FlyFake)
    assert result.output["machines"] == ["wrk1", "wrk2"]
    assert fake.calls("POST", "/v1/apps/checkout-api/machines/wrk1/restart")
    assert fake.max_in_transit == 1


def _rolled_back(result: ActionResult, fake: FakeVendor) -> None:
    assert isinstance(fake, FlyFake)
    assert result.output["image"] == OLD
    assert fake.machine("checkout-api", "web1")["config"]["image"] == OLD


@pytest.fixture(params=["restart", "rollback"])
def case(request: pytest.FixtureRequest, fake: FlyFake, deps: ProviderDeps, ctx: StepContext) -> Case:
    provider = make_provider(fake, deps, timeout="300ms")  # the timeout check stalls the fake for 0.6 s
    if request.param == "restart":
        return Case(fake, provider, "restart", worker_restart(fake), ctx, expect_ok=_restarted, stall=0.6)
    return Case(fake, provider, "rollback", FlyRollbackParams(app="checkout-api"), ctx, expect_ok=_rolled_back,
                stall=0.6)


@pytest.mark.parametrize("check", CHECKS)
async def test_conformance(check: str, case: Case, caplog: pytest.LogCaptureFixture) -> None:
    await conformance(check, case, caplog)


# -- fly.restart ---------------------------------------------------------------------------------------
async def test_restart_only_the_worker_group_one_machine_at_a_time(fake: FlyFake, provider: FlyProvider,
                                                                   ctx: StepContext) -> None:
    result = await provider.run("restart", worker_restart(fake), ctx)
    assert result.output == {"app": "checkout-api", "process_group": "worker", "machines": ["wrk1", "wrk2"],
                             "skipped": [{"id": "wrk3", "state": "stopped"}]}
    # each Machine is started again before the next one is restarted
    assert fake.log == [("restart", "wrk1"), ("started", "wrk1"), ("restart", "wrk2"), ("started", "wrk2")]
    assert fake.max_in_transit == 1
    assert fake.machine("checkout-api", "web1")["state"] == "started"
    assert not fake.calls("POST", "/v1/apps/checkout-api/machines/web1/restart")
    assert fake.machine("checkout-api", "wrk3")["state"] == "stopped"
    waits = fake.calls("GET", "/v1/apps/checkout-api/machines/wrk1/wait")
    assert waits[0].query == {"state": "started", "timeout": "60"}
    assert fake.calls("POST", "/v1/apps/checkout-api/machines/wrk1/restart")[0].headers["Authorization"] == \
        f"Bearer {TOKEN}"
    assert result.summary == ("restarted 2 Machines of checkout-api (worker) one at a time: wrk1, wrk2; "
                              "left 1 not started alone")


async def test_restart_every_group_when_none_is_given(fake: FlyFake, provider: FlyProvider, ctx: StepContext) -> None:
    result = await provider.run("restart", FlyRestartParams(app="checkout-api"), ctx)
    assert result.output["machines"] == ["web1", "wrk1", "wrk2"]
    assert [e for e in fake.log if e[0] == "restart"] == [("restart", "web1"), ("restart", "wrk1"),
                                                           ("restart", "wrk2")]


async def test_restart_keeps_polling_the_wait_endpoint_until_started(fake: FlyFake, provider: FlyProvider,
                                                                     ctx: StepContext) -> None:
    fake.boot_waits["wrk1"] = 2  # two long-polls expire (408) before it is up
    params = FlyRestartParams(app="checkout-api", process_group="worker", wait_timeout="3m")
    await provider.run("restart", params, ctx)
    waits = fake.calls("GET", "/v1/apps/checkout-api/machines/wrk1/wait")
    assert [w.query["timeout"] for w in waits] == ["60", "60", "60"]
    assert fake.log.index(("started", "wrk1")) < fake.log.index(("restart", "wrk2"))


async def test_restart_stops_at_a_machine_that_does_not_come_back_and_a_retry_resumes(
        fake: FlyFake, provider: FlyProvider, ctx: StepContext) -> None:
    fake.stuck.add("wrk1")
    params = FlyRestartParams(app="checkout-api", process_group="worker", wait_timeout="90s")
    with pytest.raises(PermanentActionError, match="wrk1 of checkout-api was not started again within 90s"):
        await provider.run("restart", params, ctx)
    assert [w.query["timeout"] for w in fake.calls("GET", "/v1/apps/checkout-api/machines/wrk1/wait")] == ["60", "30"]
    assert not fake.calls("POST", "/v1/apps/checkout-api/machines/wrk2/restart"), "went on past a down Machine"
    # the operator (or the runner's retry) tries again: wrk1 is not restarted twice, only waited for
    fake.stuck.clear()
    result = await provider.run("restart", params, ctx)
    assert result.output["machines"] == ["wrk1", "wrk2"]
    assert len(fake.calls("POST", "/v1/apps/checkout-api/machines/wrk1/restart")) == 1
    assert len(fake.calls("POST", "/v1/apps/checkout-api/machines/wrk2/restart")) == 1
    # finished: a later run of the same step restarts everything again
    await provider.run("restart", params, ctx)
    assert len(fake.calls("POST", "/v1/apps/checkout-api/machines/wrk1/restart")) == 2


async def test_restart_with_nothing_started_is_permanent(fake: FlyFake, provider: FlyProvider,
                                                         ctx: StepContext) -> None:
    for machine in ("wrk1", "wrk2"):
        fake.machine("checkout-api", machine)["state"] = "suspended"
    with pytest.raises(PermanentActionError, match=r"no started Machines .*wrk1 suspended, wrk2 suspended, wrk3"):
        await provider.run("restart", worker_restart(fake), ctx)
    with pytest.raises(PermanentActionError, match="no Machines in process group db"):
        await provider.run("restart", FlyRestartParams(app="checkout-api", process_group="db"), ctx)


async def test_unknown_app_is_permanent(provider: FlyProvider, ctx: StepContext) -> None:
    with pytest.raises(PermanentActionError, match="HTTP 404"):
        await provider.run("restart", FlyRestartParams(app="nope"), ctx)


async def test_busy_machine_is_retryable(fake: FlyFake, provider: FlyProvider, ctx: StepContext) -> None:
    fake.leased.add("wrk1")  # a deploy holds the Machine's lease
    with pytest.raises(RetryableActionError, match=r"wrk1 of checkout-api is busy \(HTTP 409"):
        await provider.run("restart", worker_restart(fake), ctx)
    with pytest.raises(RetryableActionError, match="wrk1 of checkout-api is busy"):
        await provider.run("rollback", FlyRollbackParams(app="checkout-api", process_group="worker"), ctx)


async def test_macaroon_token_is_sent_as_is(deps: ProviderDeps, ctx: StepContext) -> None:
    token = "FlyV1 fm2_lJPECAAAAAAAAMZQxBD0secret"
    async with FlyFake(token=token) as fake:
        assert isinstance(fake, FlyFake)
        fake.add_machine("api", "m1", image=NEW)
        result = await make_provider(fake, deps, token).run("restart", FlyRestartParams(app="api"), ctx)
        assert result.output["machines"] == ["m1"]
        assert fake.requests[0].headers["Authorization"] == token


# -- fly.rollback --------------------------------------------------------------------------------------
async def test_rollback_moves_every_machine_to_the_previous_complete_release(fake: FlyFake, provider: FlyProvider,
                                                                          ctx: StepContext) -> None:
    before = {m: dict(fake.machine("checkout-api", m)["config"]) for m in ("web1", "wrk1", "wrk2", "wrk3")}
    result = await provider.run("rollback", FlyRollbackParams(app="checkout-api"), ctx)
    assert result.output == {"app": "checkout-api", "process_group": None, "image": OLD, "previous_image": NEW,
                             "release_version": 1, "machines": ["web1", "wrk1", "wrk2", "wrk3"], "unchanged": []}
    assert result.summary == ("rolled back 4 Machines of checkout-api to checkout-api:deployment-01A (release v1), "
                              "was checkout-api:deployment-01C, one at a time")
    graphql = fake.calls("POST", "/graphql")[0].json
    assert graphql["variables"] == {"appName": "checkout-api", "limit": 25}
    assert "releasesUnprocessed" in graphql["query"] and "imageRef" in graphql["query"]
    for machine_id, config in before.items():
        update = fake.calls("POST", f"/v1/apps/checkout-api/machines/{machine_id}")[0].json
        assert update["config"] == {**config, "image": OLD}, "the whole config, only the image changed"
        assert fake.machine("checkout-api", machine_id)["config"]["image"] == OLD
    # the stopped Machine was updated without being launched, and not waited for
    assert fake.calls("POST", "/v1/apps/checkout-api/machines/wrk3")[0].json["skip_launch"] is True
    assert fake.machine("checkout-api", "wrk3")["state"] == "stopped"
    assert not fake.calls("GET", "/v1/apps/checkout-api/machines/wrk3/wait")
    # started Machines: waited for on their new instance, one at a time
    wait = fake.calls("GET", "/v1/apps/checkout-api/machines/web1/wait")[0]
    assert wait.query["instance_id"] == fake.machine("checkout-api", "web1")["instance_id"]
    assert fake.log[:4] == [("update", "web1"), ("started", "web1"), ("update", "wrk1"), ("started", "wrk1")]
    assert fake.max_in_transit == 1


async def test_rollback_of_one_process_group(fake: FlyFake, provider: FlyProvider, ctx: StepContext) -> None:
    result = await provider.run("rollback", FlyRollbackParams(app="checkout-api", process_group="worker"), ctx)
    assert result.output["machines"] == ["wrk1", "wrk2", "wrk3"]
    assert fake.machine("checkout-api", "web1")["config"]["image"] == NEW


async def test_rollback_to_an_explicit_image_skips_discovery(fake: FlyFake, provider: FlyProvider,
                                                             ctx: StepContext) -> None:
    result = await provider.run("rollback", FlyRollbackParams(app="checkout-api", image=BAD), ctx)
    assert not fake.calls("POST", "/graphql")
    assert result.output["image"] == BAD and result.output["previous_image"] == NEW
    assert result.output["release_version"] is None
    assert {m["config"]["image"] for m in fake.apps["checkout-api"].values()} == {BAD}


async def test_rollback_retry_finishes_a_half_done_rollback(fake: FlyFake, provider: FlyProvider,
                                                            ctx: StepContext) -> None:
    fake.stuck.add("wrk1")  # the old image does not boot on wrk1 (this time)
    with pytest.raises(PermanentActionError, match="wrk1 of checkout-api was not started"):
        await provider.run("rollback", FlyRollbackParams(app="checkout-api"), ctx)
    assert fake.machine("checkout-api", "web1")["config"]["image"] == OLD
    assert fake.machine("checkout-api", "wrk2")["config"]["image"] == NEW
    fake.stuck.clear()
    result = await provider.run("rollback", FlyRollbackParams(app="checkout-api"), ctx)
    assert result.output["image"] == OLD, "the retry keeps the target chosen by the first attempt"
    assert result.output["machines"] == ["wrk2", "wrk3"] and result.output["unchanged"] == ["web1", "wrk1"]
    assert len(fake.calls("POST", "/v1/apps/checkout-api/machines/web1")) == 1


async def test_rollback_retry_after_every_machine_was_updated_does_not_go_further_back(
        fake: FlyFake, provider: FlyProvider, ctx: StepContext, deps: ProviderDeps) -> None:
    # the first attempt updated everything, then the step timed out before it could report: the retry
    # (same run and step) must not roll back one more release
    await deps.state.set(ctx.incident.id, "fly", **{f"rollback:{ctx.idempotency_key}": OLD})
    for machine in fake.apps["checkout-api"].values():
        machine["config"]["image"] = OLD
    result = await provider.run("rollback", FlyRollbackParams(app="checkout-api"), ctx)
    assert result.output["image"] == OLD and result.output["machines"] == []
    assert result.summary.startswith("checkout-api: every Machine already runs checkout-api:deployment-01A")
    assert not fake.calls("POST", "/v1/apps/checkout-api/machines/web1")


async def test_rollback_refuses_to_guess_when_the_running_image_is_not_a_release(
        fake: FlyFake, provider: FlyProvider, ctx: StepContext) -> None:
    for machine in fake.apps["checkout-api"].values():
        machine["config"]["image"] = "registry.fly.io/checkout-api:hotfix"
        machine["image_ref"]["tag"] = "hotfix"
    with pytest.raises(PermanentActionError, match=r"not in its last 3 releases.*pass `image` explicitly"):
        await provider.run("rollback", FlyRollbackParams(app="checkout-api"), ctx)
    assert not fake.calls("POST", "/v1/apps/checkout-api/machines/web1")


async def test_rollback_without_an_earlier_release_is_permanent(fake: FlyFake, provider: FlyProvider,
                                                                ctx: StepContext) -> None:
    fake.releases["checkout-api"] = [r for r in fake.releases["checkout-api"] if r["version"] == 3]
    with pytest.raises(PermanentActionError, match="no complete release of checkout-api before v3"):
        await provider.run("rollback", FlyRollbackParams(app="checkout-api"), ctx)


async def test_graphql_errors_are_permanent(fake: FlyFake, provider: FlyProvider, ctx: StepContext) -> None:
    fake.releases.pop("checkout-api")  # GraphQL does not know the app (HTTP 200 with `errors`)
    with pytest.raises(PermanentActionError, match='release history of checkout-api: Could not find App'):
        await provider.run("rollback", FlyRollbackParams(app="checkout-api"), ctx)


# -- plan, params, remediation -------------------------------------------------------------------------
def test_plan_restart(provider: FlyProvider, fake: FlyFake, ctx: StepContext) -> None:
    calls = [c.redacted(provider.secrets()) for c in provider.plan("restart", worker_restart(fake), ctx)]
    base = f"{fake.url}/v1/apps/checkout-api/machines"
    assert [(c["method"], c["url"]) for c in calls] == [
        ("GET", base),
        ("POST", f"{base}/<each started Machine, one at a time>/restart"),
        ("GET", f"{base}/<each started Machine, one at a time>/wait?state=started&timeout=60"),
    ]
    assert calls[0]["headers"]["Authorization"] == "***"
    assert TOKEN not in str(calls)


def test_plan_rollback(provider: FlyProvider, fake: FlyFake, ctx: StepContext) -> None:
    calls = [c.redacted(provider.secrets()) for c in provider.plan("rollback", FlyRollbackParams(app="checkout-api"),
                                                                     ctx)]
    assert [c["method"] for c in calls] == ["GET", "POST", "POST", "GET"]
    assert calls[1]["url"] == f"{fake.url}/graphql"
    assert calls[1]["body"]["variables"] == {"appName": "checkout-api", "limit": 25}
    assert calls[2]["body"]["config"]["image"] == "<imageRef of the previous complete release>"
    assert "instance_id=<new instance_id>" in calls[3]["url"]
    explicit = provider.plan("rollback", FlyRollbackParams(app="checkout-api", image=OLD), ctx)
    assert [c.method for c in explicit] == ["GET", "POST", "GET"]
    assert explicit[1].body["config"]["image"] == OLD
    assert TOKEN not in str([c.redacted(provider.secrets()) for c in explicit])


@pytest.mark.parametrize(("model", "raw", "field"), [
    (FlyRestartParams, {}, "app"),
    (FlyRestartParams, {"app": "Checkout API"}, "app"),
    (FlyRestartParams, {"app": "api", "process_group": "web workers"}, "process_group"),
    (FlyRestartParams, {"app": "api", "wait_timeout": "soon"}, "wait_timeout"),
    (FlyRestartParams, {"app": "api", "machines": ["m1"]}, "machines"),
    (FlyRollbackParams, {"app": "api", "image": ""}, "image"),
])
def test_params_validation(model: type[FlyRestartParams | FlyRollbackParams], raw: dict[str, Any],
                           field: str) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(raw)
    assert field in str(info.value)


def test_params_descriptions() -> None:
    for model in FlyProvider.actions.values():
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"


def test_remediation(provider: FlyProvider) -> None:
    assert provider.remediation("restart", FlyRestartParams(app="api", process_group="worker")) == \
        Remediation("restart", "fly:api/worker")
    assert provider.remediation("rollback", FlyRollbackParams(app="api")) == Remediation("rollback", "fly:api")
