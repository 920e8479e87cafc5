"""pagerduty.*: the real `pagerduty` client (in a thread) against the TLS Events API fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from responder.actions.base import ActionResult, ProviderDeps, StepContext, call_once
from responder.actions.pagerduty import (
    PagerDutyAlertParams,
    PagerDutyChangeParams,
    PagerDutyConfig,
    PagerDutyProvider,
    PagerDutyTriggerParams,
    dedup_key_for,
)
from responder.config.base import StrictModel
from responder.errors import PermanentActionError, RetryableActionError
from tests.actions.conformance import CHECKS, Case, conformance
from tests.conftest import free_port
from tests.fakes.pagerduty import PagerDutyFake
from tests.fakes.vendor import FakeVendor

ROUTING_KEY = "R0ut1ngK3yT3st0000000000000secret"
INCIDENT_KEY = "api-error-rate|service=api"


@pytest.fixture
async def fake() -> AsyncIterator[PagerDutyFake]:
    async with PagerDutyFake(routing_key=ROUTING_KEY) as server:
        yield server


@pytest.fixture
def ca_file(fake: PagerDutyFake, tmp_path: Path) -> str:
    path = tmp_path / "fake-ca.pem"
    fake.ca.cert_pem.write_to_path(str(path))
    return str(path)


def make_provider(deps: ProviderDeps, base_url: str, ca_file: str | None, **extra: Any) -> PagerDutyProvider:
    config = PagerDutyConfig.model_validate({"routing_key": ROUTING_KEY, "base_url": base_url, "ca_file": ca_file,
                                             "timeout": "400ms", **extra})
    return PagerDutyProvider(config, deps)


@pytest.fixture
def provider(deps: ProviderDeps, fake: PagerDutyFake, ca_file: str) -> Iterator[PagerDutyProvider]:
    built = make_provider(deps, fake.url, ca_file)
    yield built
    built.close()


def _last(fake: FakeVendor) -> dict[str, Any]:
    body = fake.requests[-1].json
    assert isinstance(body, dict)
    return body


def _expect_enqueued(action: str) -> Any:
    def check(result: ActionResult, fake: FakeVendor) -> None:
        assert fake.requests[-1].path == "/v2/enqueue"
        body = _last(fake)
        assert body["event_action"] == action and body["dedup_key"] == INCIDENT_KEY
        assert result.output["dedup_key"] == INCIDENT_KEY
    return check


def _expect_change(result: ActionResult, fake: FakeVendor) -> None:
    assert isinstance(fake, PagerDutyFake) and fake.change_events
    assert fake.change_events[-1]["payload"]["summary"] == "Rolled back api to deployment 3f2a"


CASES: dict[str, tuple[StrictModel, Any]] = {
    "trigger": (PagerDutyTriggerParams(), _expect_enqueued("trigger")),
    "acknowledge": (PagerDutyAlertParams(), _expect_enqueued("acknowledge")),
    "resolve": (PagerDutyAlertParams(), _expect_enqueued("resolve")),
    "change": (PagerDutyChangeParams(summary="Rolled back api to deployment 3f2a"), _expect_change),
}


@pytest.fixture(params=sorted(CASES))
async def case(request: pytest.FixtureRequest, fake: PagerDutyFake, provider: PagerDutyProvider,
               ctx: StepContext, deps: ProviderDeps) -> Case:
    params, expect_ok = CASES[request.param]
    if request.param in ("acknowledge", "resolve"):  # responder triggered this incident's alert earlier
        await deps.state.set(ctx.incident.id, "pagerduty", dedup_key=INCIDENT_KEY, status="triggered")
    # the client does not retry a 429 (one request per attempt): the runner retries, honouring Retry-After
    return Case(fake=fake, provider=provider, verb=request.param, params=params, ctx=ctx, expect_ok=expect_ok,
                client_retries_429=False, stall=0.8, secrets=[ROUTING_KEY])


@pytest.mark.parametrize("check", CHECKS)
async def test_conformance(check: str, case: Case, caplog: pytest.LogCaptureFixture) -> None:
    await conformance(check, case, caplog)


# -- behaviour ------------------------------------------------------------------------------------------
async def test_trigger_pages_with_the_incident_as_defaults(provider: PagerDutyProvider, fake: PagerDutyFake,
                                                           ctx: StepContext, deps: ProviderDeps) -> None:
    result = await provider.run("trigger", PagerDutyTriggerParams(), ctx)

    alert = fake.alerts[INCIDENT_KEY]
    assert alert.status == "triggered" and alert.log == ["trigger"]
    payload = alert.payload
    assert payload["summary"] == "API error rate above 5%"
    assert payload["severity"] == "critical"  # the incident's severity
    assert payload["source"] == "api"  # the incident's service
    assert payload["timestamp"] == deps.clock.now().isoformat()
    details = payload["custom_details"]
    assert details["incident_id"] == ctx.incident.id and details["state"] == "triggered"
    assert details["rule"] == "api-error-rate" and details["service"] == "api"
    assert alert.links == [{"href": ctx.incident_url, "text": f"Incident #{ctx.incident.id} in responder"}]
    assert alert.client == "responder" and alert.client_url == ctx.incident_url
    body = _last(fake)
    assert body["routing_key"] == ROUTING_KEY and body["event_action"] == "trigger"
    assert fake.requests[-1].headers["User-Agent"].startswith("python-pagerduty/")
    assert result.output == {"dedup_key": INCIDENT_KEY, "severity": "critical", "status": "triggered"}
    assert "critical" in result.summary and ROUTING_KEY not in result.summary
    assert await deps.state.get(ctx.incident.id, "pagerduty") == {"dedup_key": INCIDENT_KEY, "status": "triggered"}


async def test_trigger_with_params_links_source_and_service(provider: PagerDutyProvider, fake: PagerDutyFake,
                                                            ctx: StepContext) -> None:
    incident = ctx.incident.model_copy(update={"service": "api", "value": 7.5, "source": "sentry",
                                               "url": "https://sentry.example.com/issues/42"})
    ctx = StepContext(incident=incident, run_id=ctx.run_id, step="page", incident_url=ctx.incident_url)
    params = PagerDutyTriggerParams.model_validate({
        "summary": "Automatic rollback of api failed", "severity": "P2", "component": "checkout",
        "group": "payments", "class": "error rate", "custom_details": {"runbook": "https://runbooks.example/api"},
        "links": [{"href": "https://grafana.example.com/d/api", "text": "Dashboard"}]})
    await provider.run("trigger", params, ctx)

    payload = fake.alerts[INCIDENT_KEY].payload
    assert payload["summary"] == "Automatic rollback of api failed"
    assert payload["severity"] == "error"  # P2 -> error
    assert payload["source"] == "api"
    assert (payload["component"], payload["group"], payload["class"]) == ("checkout", "payments", "error rate")
    assert payload["custom_details"]["service"] == "api" and payload["custom_details"]["value"] == 7.5
    assert payload["custom_details"]["runbook"] == "https://runbooks.example/api"
    assert [link["href"] for link in fake.alerts[INCIDENT_KEY].links] == [
        ctx.incident_url, "https://sentry.example.com/issues/42", "https://grafana.example.com/d/api"]


async def test_lifecycle_uses_the_remembered_dedup_key(provider: PagerDutyProvider, fake: PagerDutyFake,
                                                       ctx: StepContext, deps: ProviderDeps) -> None:
    await provider.run("trigger", PagerDutyTriggerParams(dedup_key="custom-key-1"), ctx)
    ack = await provider.run("acknowledge", PagerDutyAlertParams(), ctx)
    assert fake.alerts["custom-key-1"].status == "acknowledged"
    assert ack.output == {"dedup_key": "custom-key-1", "status": "acknowledged"}

    await provider.run("trigger", PagerDutyTriggerParams(dedup_key="custom-key-1"), ctx)
    assert fake.alerts["custom-key-1"].status == "acknowledged"  # a new trigger does not re-notify

    resolved = await provider.run("resolve", PagerDutyAlertParams(), ctx)
    assert fake.alerts["custom-key-1"].log == ["trigger", "acknowledge", "trigger", "resolve"]
    assert fake.alerts["custom-key-1"].status == "resolved"
    assert resolved.summary == "resolved the PagerDuty alert custom-key-1"
    assert (await deps.state.get(ctx.incident.id, "pagerduty"))["status"] == "resolved"


async def test_ack_and_resolve_send_nothing_without_a_trigger_or_twice(provider: PagerDutyProvider,
                                                                      fake: PagerDutyFake, ctx: StepContext) -> None:
    nothing = await provider.run("resolve", PagerDutyAlertParams(), ctx)
    assert fake.requests == [] and nothing.output == {"status": "none"}
    assert "no PagerDuty alert was triggered" in nothing.summary
    # an explicit key is always sent (an alert someone else triggered)
    await provider.run("resolve", PagerDutyAlertParams(dedup_key=INCIDENT_KEY), ctx)
    assert _last(fake)["dedup_key"] == INCIDENT_KEY and len(fake.requests) == 1
    # once responder's own alert is resolved (by a step, or by the two-way sync), a second resolve or a late
    # acknowledge sends nothing: no echo back to PagerDuty
    await provider.run("trigger", PagerDutyTriggerParams(), ctx)
    await provider.run("resolve", PagerDutyAlertParams(), ctx)
    sent = len(fake.requests)
    again = await provider.run("resolve", PagerDutyAlertParams(), ctx)
    late_ack = await provider.run("acknowledge", PagerDutyAlertParams(), ctx)
    assert len(fake.requests) == sent
    assert "already resolved" in again.summary and "already resolved" in late_ack.summary


async def test_change_event(provider: PagerDutyProvider, fake: PagerDutyFake, ctx: StepContext,
                            deps: ProviderDeps) -> None:
    params = PagerDutyChangeParams(summary="Rolled back api to deployment 3f2a (was 9c1b)", source="railway",
                                   custom_details={"from": "9c1b", "to": "3f2a"})
    result = await provider.run("change", params, ctx)

    event = fake.change_events[-1]
    assert fake.requests[-1].path == "/v2/change/enqueue"
    assert event["routing_key"] == ROUTING_KEY
    assert event["payload"]["summary"] == "Rolled back api to deployment 3f2a (was 9c1b)"
    assert event["payload"]["source"] == "railway"
    assert event["payload"]["timestamp"] == deps.clock.now().isoformat()
    assert event["payload"]["custom_details"]["to"] == "3f2a"
    assert event["payload"]["custom_details"]["incident_id"] == ctx.incident.id
    assert event["links"] == [{"href": ctx.incident_url, "text": f"Incident #{ctx.incident.id} in responder"}]
    assert "event_action" not in event
    assert result.output["source"] == "railway"


async def test_unknown_routing_key_is_permanent_and_named(deps: ProviderDeps, fake: PagerDutyFake, ca_file: str,
                                                          ctx: StepContext) -> None:
    fake.token = "another-routing-key-000000000000"
    provider = make_provider(deps, fake.url, ca_file)
    try:
        with pytest.raises(PermanentActionError) as info:
            await provider.run("trigger", PagerDutyTriggerParams(), ctx)
    finally:
        provider.close()
    message = str(info.value)
    assert "HTTP 400" in message and "Invalid routing key" in message
    assert "providers.pagerduty.routing_key" in message and ROUTING_KEY not in message


async def test_one_request_per_attempt(provider: PagerDutyProvider, fake: PagerDutyFake, ctx: StepContext) -> None:
    fake.fail_next(429, headers={"Retry-After": "30"}, times=3)
    with pytest.raises(RetryableActionError) as info:
        await provider.run("trigger", PagerDutyTriggerParams(), ctx)
    assert info.value.retry_after == 30.0
    fake.clear_faults()
    fake.fail_next(503, times=3)
    with pytest.raises(RetryableActionError, match="HTTP 503"):
        await provider.run("trigger", PagerDutyTriggerParams(), ctx)
    assert len(fake.requests) == 2  # the client retried neither


async def test_network_error_is_retryable(deps: ProviderDeps, ctx: StepContext) -> None:
    provider = make_provider(deps, f"https://127.0.0.1:{free_port()}", None)
    try:
        with pytest.raises(RetryableActionError, match=r"POST /v2/enqueue failed: ConnectError"):
            await call_once(provider, "trigger", PagerDutyTriggerParams(), ctx, 5)
    finally:
        provider.close()


async def test_untrusted_certificate_is_permanent(deps: ProviderDeps, fake: PagerDutyFake, ctx: StepContext) -> None:
    provider = make_provider(deps, fake.url, None)  # the system store does not know the fake's CA
    try:
        with pytest.raises(PermanentActionError, match=r"certificate is not trusted.*ca_file"):
            await call_once(provider, "trigger", PagerDutyTriggerParams(), ctx, 5)
    finally:
        provider.close()
    assert not fake.requests


# -- the fake is strict like the real API -------------------------------------------------------------------
async def test_fake_rejects_malformed_events(fake: PagerDutyFake, deps: ProviderDeps) -> None:
    ssl_ctx = fake.client_ssl_context()

    async def post(path: str, body: Any) -> tuple[int, Any]:
        async with deps.http.post(fake.url + path, json=body, ssl=ssl_ctx) as resp:
            return resp.status, await resp.json()

    status, body = await post("/v2/enqueue", {"routing_key": ROUTING_KEY, "event_action": "trigger",
                                              "payload": {"summary": "x", "source": "y", "severity": "fatal"}})
    assert status == 400 and body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert any("payload.severity" in e for e in body["errors"])
    status, body = await post("/v2/enqueue", {"routing_key": ROUTING_KEY, "event_action": "page"})
    assert status == 400 and any("event_action" in e for e in body["errors"])
    status, body = await post("/v2/enqueue", {"routing_key": ROUTING_KEY, "event_action": "resolve"})
    assert status == 400 and any("dedup_key" in e for e in body["errors"])
    status, body = await post("/v2/enqueue", {"event_action": "trigger"})
    assert status == 400 and any("routing_key" in e for e in body["errors"])
    status, body = await post("/v2/change/enqueue", {"routing_key": ROUTING_KEY, "payload": {"source": "ci"}})
    assert status == 400 and any("payload.summary" in e for e in body["errors"])
    status, body = await post("/v2/enqueue", {"routing_key": ROUTING_KEY, "event_action": "trigger",
                                              "payload": {"summary": "disk full", "source": "db-1",
                                                          "severity": "warning"}})
    assert status == 202 and body["status"] == "success" and fake.alerts[body["dedup_key"]].status == "triggered"


# -- plan, params, config -------------------------------------------------------------------------------
def test_plan_shows_the_events_without_the_routing_key(provider: PagerDutyProvider, ctx: StepContext,
                                                       fake: PagerDutyFake) -> None:
    [trigger] = provider.plan("trigger", PagerDutyTriggerParams(severity="warning"), ctx)
    assert (trigger.method, trigger.url) == ("POST", f"{fake.url}/v2/enqueue")
    assert trigger.body["routing_key"] == "***" and trigger.body["event_action"] == "trigger"
    assert trigger.body["dedup_key"] == INCIDENT_KEY and trigger.body["payload"]["severity"] == "warning"
    [resolve] = provider.plan("resolve", PagerDutyAlertParams(), ctx)
    assert resolve.body == {"routing_key": "***", "event_action": "resolve", "dedup_key": INCIDENT_KEY}
    assert "earlier pagerduty.trigger" in resolve.note
    [change] = provider.plan("change", PagerDutyChangeParams(summary="rolled back"), ctx)
    assert change.url == f"{fake.url}/v2/change/enqueue" and change.body["routing_key"] == "***"
    for call in (trigger, resolve, change):
        assert ROUTING_KEY not in str(call.redacted(provider.secrets()))
        assert ROUTING_KEY not in str(call)
    assert not fake.requests


def test_no_remediation(provider: PagerDutyProvider) -> None:
    for verb, params in (("trigger", PagerDutyTriggerParams()), ("resolve", PagerDutyAlertParams()),
                         ("change", PagerDutyChangeParams(summary="x"))):
        assert provider.remediation(verb, params) is None


def test_params_validation() -> None:
    assert PagerDutyTriggerParams(severity="HIGH").severity == "error"
    assert PagerDutyTriggerParams(severity="p1").severity == "critical"
    assert PagerDutyTriggerParams(severity="info").severity == "info"
    with pytest.raises(ValidationError, match="unknown severity"):
        PagerDutyTriggerParams(severity="urgent")
    with pytest.raises(ValidationError):
        PagerDutyTriggerParams.model_validate({"summary": "x", "priority": "P1"})
    with pytest.raises(ValidationError):
        PagerDutyTriggerParams.model_validate({"links": [{"href": "ftp://x"}]})
    with pytest.raises(ValidationError):
        PagerDutyChangeParams.model_validate({})
    with pytest.raises(ValidationError):
        PagerDutyAlertParams.model_validate({"dedup": "x"})


def test_config(tmp_path: Path) -> None:
    assert not PagerDutyConfig(api_key="rest-only-key").has_credentials()
    config = PagerDutyConfig(routing_key=ROUTING_KEY)
    assert config.has_credentials() and config.base_url == "https://events.pagerduty.com"
    with pytest.raises(ValidationError, match="https"):
        PagerDutyConfig(routing_key=ROUTING_KEY, base_url="http://127.0.0.1:1")
    with pytest.raises(ValidationError, match="ca_file"):
        PagerDutyConfig(routing_key=ROUTING_KEY, ca_file=str(tmp_path / "missing.pem"))


def test_long_incident_keys_fit_the_dedup_limit() -> None:
    key = "k" * 300
    assert len(dedup_key_for(key)) == 255 and dedup_key_for(key) != dedup_key_for("k" * 299)
    assert dedup_key_for(INCIDENT_KEY) == INCIDENT_KEY
