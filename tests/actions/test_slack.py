"""slack.post / slack.update / slack.reply through slack-sdk's AsyncWebClient against the fake Slack Web API,
the Block Kit rendering, and SlackSync keeping the message in step with the incident."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from responder.actions.base import ActionResult, ProviderDeps, StepContext, call_once
from responder.actions.slack import (
    SlackConfig,
    SlackPostParams,
    SlackProvider,
    SlackReplyParams,
    SlackUpdateParams,
)
from responder.actions.slack_message import render_incident, render_reply
from responder.clock import FakeClock
from responder.config.base import StrictModel
from responder.errors import PermanentActionError, RetryableActionError
from responder.events import Event, EventStatus, Severity
from responder.incidents.model import Incident, IncidentState, TimelineEntry
from responder.incidents.slack_sync import SlackSync
from tests.actions.conformance import CHECKS, Case, conformance
from tests.fakes.slack import TOKEN, SlackFake, validate_blocks

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BUTTONS = {"incident_ack", "incident_resolve", "incident_rollback"}


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as server:
        assert isinstance(server, SlackFake)
        yield server


def make_provider(deps: ProviderDeps, fake: SlackFake, **overrides: Any) -> SlackProvider:
    config = SlackConfig.model_validate({"bot_token": TOKEN, "signing_secret": SIGNING_SECRET,
                                         "channel": "#incidents", "base_url": fake.api_url, "timeout": "1s",
                                         **overrides})
    return SlackProvider(config, deps)


@pytest.fixture
def provider(deps: ProviderDeps, fake: SlackFake) -> SlackProvider:
    return make_provider(deps, fake)


async def run(provider: SlackProvider, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
    return await call_once(provider, verb, params, ctx, 10)


def blocks_of(fake: SlackFake, kind: str) -> list[dict[str, Any]]:
    (message,) = fake.top_level()
    return [b for b in message.blocks if b["type"] == kind]


def button_ids(blocks: list[dict[str, Any]]) -> set[str]:
    return {e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]}


# -- conformance ---------------------------------------------------------------------------------------------
VERBS: dict[str, StrictModel] = {
    "post": SlackPostParams(),
    "update": SlackUpdateParams(),
    "reply": SlackReplyParams(text="rollback started"),
}


def _expect_ok(verb: str) -> Any:
    def check(result: ActionResult, fake: SlackFake) -> None:
        assert result.output["channel"] == "C0INC0001" and result.output["ts"]
        assert len(fake.top_level()) == 1, "one incident message, always"
        (message,) = fake.top_level()
        assert message.ts == result.output["ts"]
        if verb == "update":
            assert message.edits >= 1
        if verb == "reply":
            assert [m.text for m in fake.thread("C0INC0001", message.ts)][-1] == "rollback started"
        for call in fake.calls():
            assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    return check


#: 429 handling is the one client and retry handler for every verb, and slack-sdk waits out at least a second of
#: Retry-After each time: the rate_limited check runs for slack.post only, to keep the module fast
CONFORMANCE = [(verb, check) for verb in VERBS for check in CHECKS if verb == "post" or check != "rate_limited"]


@pytest.mark.parametrize(("verb", "check"), CONFORMANCE)
async def test_conformance(verb: str, check: str, fake: SlackFake, deps: ProviderDeps, ctx: StepContext,
                           caplog: pytest.LogCaptureFixture) -> None:
    provider = make_provider(deps, fake, timeout="0.5s")
    if verb != "post":  # update and reply need the incident message first
        await run(provider, "post", SlackPostParams(), ctx)
        fake.requests.clear()
    case = Case(fake=fake, provider=provider, verb=verb, params=VERBS[verb], ctx=ctx, expect_ok=_expect_ok(verb),
                client_retries_429=True, stall=0.8, secrets=[TOKEN, SIGNING_SECRET])
    await conformance(check, case, caplog)


# -- slack.post ----------------------------------------------------------------------------------------------
async def test_post_renders_the_incident_message_and_keeps_channel_and_ts(
        provider: SlackProvider, fake: SlackFake, ctx: StepContext, deps: ProviderDeps) -> None:
    result = await run(provider, "post", SlackPostParams(), ctx)

    (message,) = fake.top_level()
    assert (message.channel, message.ts) == ("C0INC0001", "1700000000.000100")  # "#incidents" resolved to its id
    assert result.output == {"channel": "C0INC0001", "ts": message.ts, "posted": True,
                             "permalink": "https://acme.slack.com/archives/C0INC0001/p1700000000000100"}
    assert "posted the incident message to #incidents" in result.summary
    stored = await deps.state.get(ctx.incident.id, "slack")
    assert stored["channel"] == "C0INC0001" and stored["ts"] == message.ts
    assert stored["incident_url"] == ctx.incident_url

    header = message.blocks[0]
    assert header["type"] == "header" and "API error rate above 5%" in header["text"]["text"]
    (actions,) = [b for b in message.blocks if b["type"] == "actions"]
    assert {e["action_id"]: e["value"] for e in actions["elements"]} == dict.fromkeys(BUTTONS, ctx.incident.id)
    assert [e["text"]["text"] for e in actions["elements"]] == ["Acknowledge", "Resolve", "Roll back"]
    rendered = str(message.blocks)
    assert f"<{ctx.incident_url}|Open incident>" in rendered
    assert "*Severity*\\n:red_circle: critical" in rendered and "*Service*\\napi" in rendered
    assert "triggered" in message.text.lower() and "API error rate" in message.text
    body = fake.method_calls("chat.postMessage")[0]
    assert body["unfurl_links"] is False and body["channel"] == "#incidents"


async def test_post_with_a_source_url_links_to_it(deps: ProviderDeps, fake: SlackFake) -> None:
    event = Event(source="grafana", name="HighErrorRate", service="checkout", status=EventStatus.FIRING, value=7.25,
                  summary="5xx ratio 7.25% > 5%", url="https://grafana.example.com/alerting/abc?x=1|2",
                  fingerprint="f", occurred_at=deps.clock.now(), received_at=deps.clock.now(), delivery_id="d1")
    incident, _ = await deps.incidents.open(key="k", rule_id="checkout-errors", title="Checkout errors",
                                            severity=Severity.WARNING, group={}, playbook=None, event=event,
                                            text="opened")
    ctx = StepContext(incident=incident, run_id="r1", step="notify")
    await run(make_provider(deps, fake), "post", SlackPostParams(channel="C0OPS0002"), ctx)
    (message,) = fake.top_level()
    rendered = str(message.blocks)
    assert message.channel == "C0OPS0002"
    assert "<https://grafana.example.com/alerting/abc?x=1%7C2|Source (grafana)>" in rendered
    assert f"<https://responder.example.com/incidents/{incident.id}|Open incident>" in rendered  # from public_url
    assert "*Value*\\n7.25" in rendered and "5xx ratio 7.25% &gt; 5%" in rendered


async def test_a_second_post_updates_the_same_message_and_threads_its_text(
        provider: SlackProvider, fake: SlackFake, ctx: StepContext, deps: ProviderDeps) -> None:
    first = await run(provider, "post", SlackPostParams(text="rolling back api"), ctx)
    await deps.incidents.acknowledge(ctx.incident.id, "slack:U0DANA001")
    second = await run(provider, "post", SlackPostParams(text="rollback done"), ctx)

    (message,) = fake.top_level()
    assert second.output["ts"] == first.output["ts"] == message.ts and second.output["posted"] is False
    assert message.edits == 1 and "acknowledged" in message.text
    assert "rolling back api" in str(message.blocks), "the first post's text stays in the message"
    assert [m.text for m in fake.thread("C0INC0001", message.ts)] == ["rollback done"]
    assert second.output["reply_ts"] == fake.thread("C0INC0001", message.ts)[0].ts
    assert "replied in its thread" in second.summary
    assert "Acknowledged by <@U0DANA001>" in str(message.blocks)
    assert button_ids(message.blocks) == {"incident_resolve", "incident_rollback"}


async def test_two_replicas_posting_at_once_leave_one_message(
        deps: ProviderDeps, fake: SlackFake, incident: Incident) -> None:
    replicas = [make_provider(deps, fake), make_provider(deps, fake)]
    contexts = [StepContext(incident=incident, run_id=f"run-{i}", step="notify") for i in range(2)]
    outcomes = await asyncio.gather(*(run(p, "post", SlackPostParams(), c) for p, c in zip(replicas, contexts,
                                                                                           strict=True)),
                                    return_exceptions=True)
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, RetryableActionError), outcome
            outcomes[i] = await run(replicas[i], "post", SlackPostParams(), contexts[i])  # the runner's retry
    results = [o for o in outcomes if isinstance(o, ActionResult)]
    assert sorted(r.output["posted"] for r in results) == [False, True]
    assert len(fake.calls(path="/api/chat.postMessage")) == 1
    assert len(fake.top_level()) == 1


async def test_a_failed_post_releases_the_incident_for_the_next_step(
        provider: SlackProvider, fake: SlackFake, ctx: StepContext, deps: ProviderDeps) -> None:
    with pytest.raises(PermanentActionError, match="channel_not_found"):
        await run(provider, "post", SlackPostParams(channel="#nope"), ctx)
    other = StepContext(incident=ctx.incident, run_id="later-run", step="notify")
    result = await run(provider, "post", SlackPostParams(), other)
    assert result.output["posted"] is True and len(fake.top_level()) == 1


async def test_a_claim_left_by_a_dead_replica_is_taken_over(
        provider: SlackProvider, fake: SlackFake, ctx: StepContext, deps: ProviderDeps, clock: FakeClock) -> None:
    await deps.state.set_if_absent(ctx.incident.id, "slack", "claim", f"dead:run@{clock.now().timestamp()}/abcd")
    clock.advance(minutes=3)
    result = await run(provider, "post", SlackPostParams(), ctx)
    assert result.output["posted"] is True and len(fake.top_level()) == 1


async def test_a_fresh_claim_of_another_step_is_retryable(
        provider: SlackProvider, fake: SlackFake, ctx: StepContext, deps: ProviderDeps, clock: FakeClock) -> None:
    await deps.state.set_if_absent(ctx.incident.id, "slack", "claim", f"busy:run@{clock.now().timestamp()}/abcd")
    with pytest.raises(RetryableActionError, match="another step is posting") as info:
        await run(provider, "post", SlackPostParams(), ctx)
    assert info.value.retry_after == 2
    assert not fake.requests


async def test_post_without_any_channel_is_permanent(deps: ProviderDeps, fake: SlackFake, ctx: StepContext) -> None:
    provider = make_provider(deps, fake, channel=None)
    with pytest.raises(PermanentActionError, match="no channel"):
        await run(provider, "post", SlackPostParams(), ctx)
    assert not fake.requests
    (call,) = provider.plan("post", SlackPostParams(channel=""), ctx)
    assert call.body["channel"] == "<no channel: set channel or providers.slack.channel>"


async def test_once_posted_the_message_is_updated_without_a_channel(
        provider: SlackProvider, deps: ProviderDeps, fake: SlackFake, ctx: StepContext) -> None:
    await run(provider, "post", SlackPostParams(channel="C0OPS0002"), ctx)
    result = await run(make_provider(deps, fake, channel=None), "post", SlackPostParams(text="resolved"), ctx)
    assert result.output["channel"] == "C0OPS0002" and result.output["posted"] is False


# -- slack.update / slack.reply ------------------------------------------------------------------------------
async def test_update_rerenders_the_current_incident(
        provider: SlackProvider, fake: SlackFake, ctx: StepContext, deps: ProviderDeps) -> None:
    await run(provider, "post", SlackPostParams(), ctx)
    await deps.incidents.resolve(ctx.incident.id, "user:alice", note="rolled back")
    result = await run(provider, "update", SlackUpdateParams(), ctx)  # ctx.incident is still the open one

    (message,) = fake.top_level()
    assert message.edits == 1 and result.output["ts"] == message.ts
    assert message.blocks[0]["text"]["text"].startswith(":white_check_mark: Resolved: ")
    assert not button_ids(message.blocks), "a resolved incident has no buttons"
    assert "Resolved by alice" in str(message.blocks)
    assert message.text.startswith("Resolved: ")
    update = fake.method_calls("chat.update")[0]
    assert (update["channel"], update["ts"]) == ("C0INC0001", message.ts)


async def test_update_and_reply_need_the_message(provider: SlackProvider, fake: SlackFake, ctx: StepContext) -> None:
    for verb, params in (("update", SlackUpdateParams()), ("reply", SlackReplyParams(text="x"))):
        with pytest.raises(PermanentActionError, match=r"no Slack message yet; run a slack\.post step first"):
            await run(provider, verb, params, ctx)
    assert not fake.requests


async def test_reply_threads_under_the_message_escaped(
        provider: SlackProvider, fake: SlackFake, ctx: StepContext) -> None:
    await run(provider, "post", SlackPostParams(), ctx)
    result = await run(provider, "reply", SlackReplyParams(text="deploy <!channel> & *done*", broadcast=True), ctx)
    (message,) = fake.top_level()
    (reply,) = fake.thread("C0INC0001", message.ts)
    assert reply.text == "deploy &lt;!channel&gt; &amp; *done*"
    assert result.output["reply_ts"] == reply.ts
    assert fake.method_calls("chat.postMessage")[-1]["reply_broadcast"] is True


# -- errors --------------------------------------------------------------------------------------------------
SLACK_ERRORS = [
    ('{"ok": false, "error": "invalid_auth"}', PermanentActionError, "invalid_auth: the bot token was refused"),
    ('{"ok": false, "error": "token_revoked"}', PermanentActionError, "providers.slack.bot_token"),
    ('{"ok": false, "error": "missing_scope", "needed": "chat:write", "provided": "channels:read"}',
     PermanentActionError, "lacks the chat:write scope"),
    ('{"ok": false, "error": "not_in_channel"}', PermanentActionError, "invite the bot"),
    ('{"ok": false, "error": "invalid_blocks", "response_metadata": {"messages": ["[ERROR] bad block"]}}',
     PermanentActionError, "invalid_blocks ([ERROR] bad block)"),
    ('{"ok": false, "error": "internal_error"}', RetryableActionError, "internal_error"),
    ('{"ok": false, "error": "msg_too_long"}', PermanentActionError, "msg_too_long"),
]


@pytest.mark.parametrize(("body", "error", "text"), SLACK_ERRORS)
async def test_ok_false_errors_are_classified(provider: SlackProvider, fake: SlackFake, ctx: StepContext,
                                              body: str, error: type[Exception], text: str) -> None:
    fake.fail_next(200, body=body)
    with pytest.raises(error, match=r"^slack: chat\.postMessage: ") as info:
        await run(provider, "post", SlackPostParams(), ctx)
    assert text in str(info.value)


async def test_a_wrong_token_is_invalid_auth_from_the_fake(deps: ProviderDeps, fake: SlackFake,
                                                           ctx: StepContext) -> None:
    provider = make_provider(deps, fake, bot_token="xoxb-not-the-right-one")
    with pytest.raises(PermanentActionError, match="invalid_auth: the bot token was refused") as info:
        await run(provider, "post", SlackPostParams(), ctx)
    assert "xoxb-not-the-right-one" not in str(info.value)


async def test_unknown_channel_is_permanent(provider: SlackProvider, ctx: StepContext) -> None:
    with pytest.raises(PermanentActionError, match="channel_not_found"):
        await run(provider, "post", SlackPostParams(channel="#random"), ctx)


async def test_not_a_member_is_permanent(deps: ProviderDeps, ctx: StepContext) -> None:
    async with SlackFake(member_of=set()) as fake:
        assert isinstance(fake, SlackFake)
        with pytest.raises(PermanentActionError, match="not_in_channel"):
            await run(make_provider(deps, fake), "post", SlackPostParams(), ctx)


async def test_a_long_retry_after_goes_back_to_the_runner(provider: SlackProvider, fake: SlackFake,
                                                          ctx: StepContext) -> None:
    fake.fail_next(429, headers={"Retry-After": "30"}, body='{"ok": false, "error": "ratelimited"}')
    with pytest.raises(RetryableActionError, match="rate limited") as info:
        await run(provider, "post", SlackPostParams(), ctx)
    assert info.value.retry_after == 30.0
    assert len(fake.requests) == 1, "a 30 s wait is not spent inside the step"


async def test_a_second_429_after_the_sdk_retry_is_retryable(provider: SlackProvider, fake: SlackFake,
                                                             ctx: StepContext) -> None:
    fake.fail_next(429, headers={"Retry-After": "0"}, times=2)
    with pytest.raises(RetryableActionError, match="HTTP 429") as info:
        await run(provider, "post", SlackPostParams(), ctx)
    assert info.value.retry_after == 0.0
    assert len(fake.requests) == 2


@pytest.mark.parametrize("status", [502, 503])
async def test_5xx_is_retryable(provider: SlackProvider, fake: SlackFake, ctx: StepContext, status: int) -> None:
    fake.fail_next(status, body="<html>bad gateway</html>")
    with pytest.raises(RetryableActionError, match=f"HTTP {status}"):
        await run(provider, "post", SlackPostParams(), ctx)


async def test_connection_refused_is_retryable(deps: ProviderDeps, ctx: StepContext) -> None:
    async with SlackFake() as fake:
        assert isinstance(fake, SlackFake)
        url = fake.api_url  # closed right away: nothing listens there any more
    provider = SlackProvider(SlackConfig(bot_token=TOKEN, channel="#incidents", base_url=url), deps)
    with pytest.raises(RetryableActionError, match=r"chat\.postMessage failed: Client"):
        await run(provider, "post", SlackPostParams(), ctx)


async def test_a_failed_permalink_does_not_fail_the_post(provider: SlackProvider, fake: SlackFake,
                                                         ctx: StepContext) -> None:
    fake.error_next("chat.getPermalink", "internal_error")
    with capture_logs() as events:
        result = await run(provider, "post", SlackPostParams(), ctx)
    assert result.output["posted"] is True and "permalink" not in result.output
    assert any(e["event"] == "slack permalink not available" for e in events)


# -- plan, params, remediation, config -----------------------------------------------------------------------
def test_plan_shows_the_requests_without_the_token(provider: SlackProvider, ctx: StepContext) -> None:
    (call,) = provider.plan("post", SlackPostParams(text="extra"), ctx)
    assert (call.method, call.url) == ("POST", f"{provider.base_url}chat.postMessage")
    assert call.body["channel"] == "#incidents" and call.body["blocks"][0]["type"] == "header"
    assert "extra" in str(call.body["blocks"]) and "chat.update" in call.note
    redacted = call.redacted(provider.secrets())
    assert TOKEN not in str(redacted) and redacted["headers"]["Authorization"] == "***"
    assert TOKEN not in str(call.headers)

    (update,) = provider.plan("update", SlackUpdateParams(), ctx)
    assert update.url.endswith("/chat.update") and update.body["ts"] == "<ts of the incident message>"
    (reply,) = provider.plan("reply", SlackReplyParams(text="a <b>"), ctx)
    assert reply.body["thread_ts"] == "<ts of the incident message>" and reply.body["text"] == "a &lt;b&gt;"


def test_params_are_validated() -> None:
    with pytest.raises(ValidationError):
        SlackReplyParams.model_validate({"text": ""})
    with pytest.raises(ValidationError):
        SlackReplyParams.model_validate({})
    with pytest.raises(ValidationError):
        SlackPostParams.model_validate({"chanel": "#incidents"})
    with pytest.raises(ValidationError):
        SlackUpdateParams.model_validate({"text": "x"})
    assert SlackPostParams.model_validate({"channel": "{{ incident.labels.channel }}"}).channel
    assert set(SlackProvider.action_names()) == {"slack.post", "slack.update", "slack.reply"}
    for params in SlackPostParams, SlackReplyParams:
        assert all(f.description for f in params.model_fields.values())


def test_no_remediation(provider: SlackProvider) -> None:
    for verb, params in VERBS.items():
        assert provider.remediation(verb, params) is None


def test_credentials_are_the_bot_token() -> None:
    assert not SlackConfig(signing_secret=SIGNING_SECRET).has_credentials()
    assert SlackConfig(bot_token=TOKEN).has_credentials()
    assert SlackConfig().base_url == "https://slack.com/api/"
    assert set(SlackConfig(bot_token=TOKEN, signing_secret=SIGNING_SECRET).secrets()) == {
        TOKEN, SIGNING_SECRET}


# -- rendering -----------------------------------------------------------------------------------------------
def _incident(**changes: Any) -> Incident:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    base = Incident(id="inc_1", key="k", rule_id="api-errors", title="API errors", severity=Severity.ERROR,
                    service="api", created_at=now, updated_at=now)
    return base.model_copy(update=changes)


def test_rendering_stays_within_slack_limits() -> None:
    incident = _incident(title="x" * 500, summary="<!channel> " + "y" * 10_000, service="s" * 3000,
                         source="grafana", url="https://e.com/" + "z" * 1900, value=1e21,
                         automation_frozen=True, frozen_reason="rollback budget exhausted")
    text, blocks = render_incident(incident, incident_url="https://r.example.com/incidents/inc_1", note="n" * 5000)
    validate_blocks(blocks)
    assert len(blocks[0]["text"]["text"]) <= 150 and blocks[0]["text"]["text"].endswith("…")
    assert "&lt;!channel&gt;" in str(blocks) and "<!channel>" not in str(blocks)
    assert len(text) <= 3000
    assert "Automation frozen" in str(blocks)


def test_rendering_by_state() -> None:
    now = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    _, triggered = render_incident(_incident())
    assert button_ids(triggered) == BUTTONS
    _, acked = render_incident(_incident(state=IncidentState.ACKNOWLEDGED, acknowledged_at=now,
                                         acknowledged_by="user:alice"))
    assert "Acknowledged by alice" in str(acked) and "incident_ack" not in button_ids(acked)
    _, mitigating = render_incident(_incident(state=IncidentState.MITIGATING, playbook="rollback-api",
                                              acknowledged_at=now, acknowledged_by="slack:U0DANA001"))
    assert "Mitigating: playbook `rollback-api`" in str(mitigating) and "acknowledged by <@U0DANA001>" in str(
        mitigating)
    text, resolved = render_incident(_incident(state=IncidentState.RESOLVED, resolved_at=now, resolved_by="auto"),
                                     note="rolling back api")
    assert "rolling back api" not in str(resolved), "the posting step's progress line is stale once resolved"
    assert not [b for b in resolved if b["type"] == "actions"] and text == "Resolved: API errors (api)"
    assert "<!date^1767269100^{date_short_pretty} {time}|2026-01-01 12:05 UTC>" in str(resolved)
    rollback = next(e for b in triggered if b["type"] == "actions" for e in b["elements"]
                    if e["action_id"] == "incident_rollback")
    assert rollback["style"] == "danger" and rollback["confirm"]["confirm"]["text"] == "Roll back"


def test_reply_rendering() -> None:
    entry = TimelineEntry(at=datetime(2026, 1, 1, tzinfo=UTC), actor="step:rollback", kind="step",
                          text="railway.rollback ok: rolled back <api>")
    assert render_reply(entry) == "*step:rollback*: railway.rollback ok: rolled back &lt;api&gt;"


# -- SlackSync -----------------------------------------------------------------------------------------------
@pytest.fixture
async def sync(provider: SlackProvider, deps: ProviderDeps) -> AsyncIterator[SlackSync]:
    sync = SlackSync(provider, deps.incidents, deps.state)
    sync.attach()
    sync.start()
    yield sync
    await sync.close()


async def test_sync_updates_the_message_in_place_and_threads_the_timeline(
        sync: SlackSync, provider: SlackProvider, fake: SlackFake, ctx: StepContext, deps: ProviderDeps) -> None:
    incidents = deps.incidents
    await run(provider, "post", SlackPostParams(), ctx)
    ts = fake.top_level()[0].ts

    event = Event(source="grafana", name="HighErrorRate", status=EventStatus.FIRING, value=9.0, fingerprint="f",
                  occurred_at=deps.clock.now(), received_at=deps.clock.now(), delivery_id="d2")
    await incidents.record_event(ctx.incident.id, event)  # kind "event": neither threaded nor a state change
    await incidents.note(ctx.incident.id, "step:notify", "slack.post ok: posted", kind="step")  # our own echo
    await incidents.acknowledge(ctx.incident.id, "slack:U0DANA001")
    await incidents.note(ctx.incident.id, "user:bob", "looking at the deploy")
    await incidents.resolve(ctx.incident.id, "user:alice", note="rolled back")
    await sync.flush()

    (message,) = fake.top_level()
    assert message.ts == ts and message.edits == 2, "each state change edits the one message"
    updates = fake.method_calls("chat.update")
    assert [(u["channel"], u["ts"]) for u in updates] == [("C0INC0001", ts)] * 2
    assert "Acknowledged by <@U0DANA001>" in str(message.history[1]["blocks"])
    assert message.blocks[0]["text"]["text"].startswith(":white_check_mark: Resolved")
    assert not button_ids(message.blocks)
    assert [m.text for m in fake.thread("C0INC0001", ts)] == [
        "*<@U0DANA001>*: acknowledged", "*bob*: looking at the deploy", "*alice*: resolved: rolled back"]


async def test_sync_ignores_incidents_without_a_message(sync: SlackSync, fake: SlackFake, ctx: StepContext,
                                                        deps: ProviderDeps) -> None:
    await deps.incidents.acknowledge(ctx.incident.id, "user:alice")
    await sync.flush()
    assert not fake.requests


async def test_sync_logs_and_drops_failures_and_keeps_going(
        sync: SlackSync, provider: SlackProvider, fake: SlackFake, ctx: StepContext, deps: ProviderDeps) -> None:
    await run(provider, "post", SlackPostParams(), ctx)
    fake.fail_next(500, times=2)  # the update and the reply of the acknowledgement
    with capture_logs() as events:
        await deps.incidents.acknowledge(ctx.incident.id, "user:alice")  # never raises into the service
        await sync.flush()
        await deps.incidents.resolve(ctx.incident.id, "user:alice")
        await sync.flush()
    failures = [e for e in events if e["event"].startswith("slack sync")]
    assert [e["event"] for e in failures] == ["slack sync update failed", "slack sync reply failed"]
    assert all("HTTP 500" in e["error"] and e["retryable"] for e in failures)
    assert TOKEN not in str(events)
    (message,) = fake.top_level()
    assert message.blocks[0]["text"]["text"].startswith(":white_check_mark: Resolved")
    assert [m.text for m in fake.thread("C0INC0001", message.ts)] == ["*alice*: resolved"]


async def test_sync_listener_never_blocks_and_close_drains(provider: SlackProvider, fake: SlackFake,
                                                           ctx: StepContext, deps: ProviderDeps) -> None:
    sync = SlackSync(provider, deps.incidents, deps.state, max_queue=2)
    sync.attach()
    sync.attach()  # idempotent
    assert deps.incidents.on_timeline.count(sync.on_timeline) == 1
    await run(provider, "post", SlackPostParams(), ctx)
    for i in range(4):  # no worker yet: the queue fills, the rest is dropped, the service is not held up
        await deps.incidents.note(ctx.incident.id, "user:bob", f"note {i}")
    assert sync.queue.qsize() == 2
    sync.start()
    await sync.close()
    assert sync.on_timeline not in deps.incidents.on_timeline
    (message,) = fake.top_level()
    assert [m.text for m in fake.thread("C0INC0001", message.ts)] == ["*bob*: note 0", "*bob*: note 1"]
