"""PagerDuty two-way sync on a real app and Redis, against the TLS Events API fake and the Slack fake.

Acceptance: an ack in Slack (as slack:U123, through IncidentService) acknowledges the PagerDuty alert with the
same dedup key and updates the Slack message; the incident.acknowledged webhook PagerDuty then sends changes
nothing and sends nothing back. A resolve in PagerDuty resolves the incident and updates Slack without a
resolve going back. Escalations and the like land on the timeline (and in the Slack thread) and reach the rules.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from responder.events import Severity
from responder.incidents.model import Incident, IncidentState, TimelineEntry
from responder.ingest.pagerduty import sign
from tests.conftest import PAYLOADS
from tests.fakes.pagerduty import PagerDutyFake
from tests.fakes.slack import TOKEN as SLACK_TOKEN
from tests.fakes.slack import SlackFake

ROUTING_KEY = "R0UT1NGKEY0123456789abcdef0sync01"
WEBHOOK_SECRET = "pd-webhook-secret-7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
KEY = "checkout-latency|service=checkout-api"
PD_INCIDENT = "Q2ABCDEF1234"

CONFIG = """
providers:
  slack: {bot_token: "${SLACK_BOT_TOKEN}", channel: "#incidents", base_url: "${SLACK_URL}"}
  pagerduty: {routing_key: "${PAGERDUTY_ROUTING_KEY}", base_url: "${PAGERDUTY_URL}", ca_file: "${PAGERDUTY_CA}"}
ingest:
  pagerduty:
    signing_secrets: ["${PAGERDUTY_WEBHOOK_SECRET}"]
"""

PLAYBOOKS = """
playbooks:
  - id: page
    steps:
      - {name: announce, action: slack.post, with: {text: "Paging on-call"}}
      - {name: page, action: pagerduty.trigger, with: {}}
  - id: page-custom-key
    steps:
      - {name: announce, action: slack.post, with: {}}
      - {name: page, action: pagerduty.trigger, with: {dedup_key: "checkout/p95-latency"}}
  - id: pagerduty-escalated
    steps:
      - name: tell the channel
        action: slack.post
        with:
          text: "PagerDuty escalated incident {{ incident.labels.incident_number }} to {{ incident.labels.assignee }}"
"""

# the example rule of the docs: an escalation in PagerDuty is an event the rules see
RULES = """
rules:
  - id: pagerduty-escalated
    description: PagerDuty escalated an incident
    title: "PagerDuty escalated: {{ event.annotations.title }}"
    # incident.resolved is in the same series (one per PagerDuty incident): it resolves what escalated fired
    match: {source: pagerduty, name: {in: [incident.escalated, incident.resolved]}}
    group_by: [labels.incident_id]
    severity: critical
    playbook: pagerduty-escalated
    resolve: {quiet: 4h}
"""


class World:
    def __init__(self, slack: SlackFake, pagerduty: PagerDutyFake) -> None:
        self.slack = slack
        self.pagerduty = pagerduty
        self.client: Any = None
        self.services: Any = None

    async def start(self, make_config: Any, make_app: Any, tmp_path: Path, *, pagerduty: bool = True,
                    config: str = CONFIG) -> None:
        ca = tmp_path / "pagerduty-ca.pem"
        self.pagerduty.ca.cert_pem.write_to_path(str(ca))
        env = {"SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_URL": self.slack.api_url,
               "PAGERDUTY_ROUTING_KEY": ROUTING_KEY if pagerduty else "", "PAGERDUTY_URL": self.pagerduty.url,
               "PAGERDUTY_CA": str(ca), "PAGERDUTY_WEBHOOK_SECRET": WEBHOOK_SECRET}
        files = {"responder.yaml": config, "rules/pd.yaml": RULES, "playbooks/pd.yaml": PLAYBOOKS}
        self.client, self.services = await make_app(make_config(files, env=env))
        self.services.pagerduty_sync.backoff_seconds = 0.01

    async def settle(self) -> None:
        for _ in range(3):  # a sync may write a note that SlackSync threads, a rule may start a playbook...
            await self.services.runner.drain()
            await self.services.pagerduty_sync.flush()
            await self.services.slack_sync.flush()

    async def open_and_page(self, playbook: str = "page") -> Incident:
        incident, created = await self.services.incidents.open(
            key=KEY, rule_id="checkout-latency", title="checkout-api p95 latency above 2s", severity=Severity.CRITICAL,
            group={"service": "checkout-api"}, playbook=playbook, event=None, text="rule checkout-latency fired")
        assert created
        await self.services.runner.start(incident, playbook, None)
        await self.settle()
        return await self.get(incident.id)

    async def get(self, incident_id: str) -> Incident:
        incident: Incident = await self.services.incidents.get(incident_id)
        return incident

    async def timeline(self, incident_id: str) -> list[TimelineEntry]:
        return list(await self.services.incidents.store.timeline(incident_id))

    async def webhook(self, name: str, *, incident_key: str | None = KEY, **changes: Any) -> dict[str, Any]:
        """POST the PagerDuty webhook fixture `name` (signed), as PagerDuty would, and let everything settle."""
        payload = copy.deepcopy(json.loads((PAYLOADS / "pagerduty" / f"{name}.json").read_bytes()))
        data = payload["event"]["data"]
        if data.get("type") == "incident":
            if incident_key is None:
                data.pop("incident_key", None)
            else:
                data["incident_key"] = incident_key
        payload["event"].update(changes)
        raw = json.dumps(payload).encode()
        response = await self.client.post("/hooks/pagerduty", data=raw, headers={
            "Content-Type": "application/json", "User-Agent": "PagerDuty-Webhook/V3.0",
            "X-PagerDuty-Signature": sign(raw, WEBHOOK_SECRET)})
        assert response.status == 202, await response.text()
        answer: dict[str, Any] = await response.json()
        await self.services.consumer.poll(block_ms=100)
        await self.settle()
        return answer

    def alert_events(self, action: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.pagerduty.events if action is None or e["event_action"] == action]

    def message(self) -> Any:
        [message] = [m for m in self.slack.top_level() if "latency above 2s" in m.text]
        return message


@pytest.fixture
async def world() -> AsyncIterator[World]:
    slack = SlackFake()
    pagerduty = PagerDutyFake(routing_key=ROUTING_KEY)
    await slack.start()
    await pagerduty.start()
    yield World(slack, pagerduty)
    await slack.close()
    await pagerduty.close()


def _blocks(message: Any) -> str:
    return json.dumps(message.blocks)


# --- acceptance --------------------------------------------------------------------------------------


async def test_ack_in_slack_acks_pagerduty_and_the_webhook_that_follows_changes_nothing(
        world: World, make_config: Any, make_app: Any, tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path)
    incident = await world.open_and_page()
    [trigger] = world.alert_events()
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == KEY
    message = world.message()
    assert "Triggered" in _blocks(message)

    # someone presses Acknowledge in Slack (the Slack part calls the service with the Slack user)
    await world.services.incidents.acknowledge(incident.id, "slack:U123")
    await world.settle()

    acked = await world.get(incident.id)
    assert acked.state is IncidentState.ACKNOWLEDGED and acked.acknowledged_by == "slack:U123"
    [ack] = world.alert_events("acknowledge")
    assert ack["dedup_key"] == trigger["dedup_key"] == KEY
    assert ack["routing_key"] == ROUTING_KEY
    assert world.pagerduty.alerts[KEY].status == "acknowledged"
    updates = [u for u in world.slack.method_calls("chat.update") if u["ts"] == message.ts]
    assert updates and "Acknowledged" in _blocks(world.message())
    entries = await world.timeline(incident.id)
    assert [e.text for e in entries if e.actor == "slack:U123"] == ["acknowledged"]
    assert any(e.actor == "sync:pagerduty" and e.text == f"acknowledged the PagerDuty alert {KEY}" for e in entries)

    # PagerDuty now tells us about that acknowledgement (the agent is our own Events API integration)
    sent, slack_requests = len(world.pagerduty.events), len(world.slack.requests)
    before = await world.get(incident.id)
    answer = await world.webhook("incident_acknowledged", agent={
        "id": "PINT0EV2", "type": "events_api_v2_inbound_integration_reference",
        "summary": "responder (Events API v2)"})
    assert answer["accepted"] == 1

    assert await world.get(incident.id) == before  # nothing changed
    assert await world.timeline(incident.id) == entries  # not even a timeline entry
    assert len(world.pagerduty.events) == sent  # nothing sent back
    assert len(world.slack.requests) == slack_requests  # and nothing to Slack


async def test_resolve_in_pagerduty_resolves_and_updates_slack_without_sending_it_back(
        world: World, make_config: Any, make_app: Any, tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path)
    incident = await world.open_and_page()

    await world.webhook("incident_acknowledged")  # Dana acknowledges in the PagerDuty app
    acked = await world.get(incident.id)
    assert acked.state is IncidentState.ACKNOWLEDGED and acked.acknowledged_by == "pagerduty:Dana Ops"
    assert "Acknowledged" in _blocks(world.message())

    await world.webhook("incident_resolved")  # ... and resolves it there
    resolved = await world.get(incident.id)
    assert resolved.state is IncidentState.RESOLVED and resolved.resolved_by == "pagerduty:Dana Ops"
    assert "Resolved" in _blocks(world.message())
    assert [e["event_action"] for e in world.alert_events()] == ["trigger"]  # no ack, no resolve echoed back
    entries = await world.timeline(incident.id)
    assert [(e.actor, e.text) for e in entries if e.actor.startswith("pagerduty:")] == [
        ("pagerduty:Dana Ops", "acknowledged"), ("pagerduty:Dana Ops", "resolved")]
    assert not any(e.actor == "sync:pagerduty" for e in entries)
    replies = [m.text for m in world.slack.thread(world.message().channel, world.message().ts)]
    assert any("Dana Ops" in r and "resolved" in r for r in replies)

    # a later ack or resolve in responder has nothing left to send
    await world.services.incidents.resolve(incident.id, "user:alice")
    await world.settle()
    assert [e["event_action"] for e in world.alert_events()] == ["trigger"]


async def test_resolve_in_responder_resolves_the_alert_and_the_webhook_is_a_no_op(
        world: World, make_config: Any, make_app: Any, tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path)
    incident = await world.open_and_page()
    await world.services.incidents.resolve(incident.id, "rule:checkout-latency", "condition cleared")
    await world.settle()
    [resolve] = world.alert_events("resolve")
    assert resolve["dedup_key"] == KEY and world.pagerduty.alerts[KEY].status == "resolved"
    assert world.alert_events("acknowledge") == []  # resolved straight away: no ack first
    entries = await world.timeline(incident.id)

    await world.webhook("incident_resolved")
    assert await world.timeline(incident.id) == entries
    assert len(world.alert_events()) == 2


async def test_a_second_ack_sends_nothing_more(world: World, make_config: Any, make_app: Any,
                                               tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path)
    incident = await world.open_and_page()
    await world.services.incidents.acknowledge(incident.id, "slack:U123")
    await world.services.incidents.acknowledge(incident.id, "slack:U123")
    await world.services.incidents.acknowledge(incident.id, "user:alice")
    await world.settle()
    assert len(world.alert_events("acknowledge")) == 1


async def test_custom_dedup_key_is_found_through_the_index(world: World, make_config: Any, make_app: Any,
                                                          tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path)
    incident = await world.open_and_page("page-custom-key")
    [trigger] = world.alert_events()
    assert trigger["dedup_key"] == "checkout/p95-latency"

    await world.webhook("incident_acknowledged", incident_key="checkout/p95-latency")
    assert (await world.get(incident.id)).acknowledged_by == "pagerduty:Dana Ops"

    await world.services.incidents.resolve(incident.id, "slack:U123")
    await world.settle()
    [resolve] = world.alert_events("resolve")
    assert resolve["dedup_key"] == "checkout/p95-latency"


async def test_escalation_goes_on_the_timeline_and_to_the_rules(world: World, make_config: Any, make_app: Any,
                                                                tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path)
    incident = await world.open_and_page()

    await world.webhook("incident_escalated")
    entries = await world.timeline(incident.id)
    [escalated] = [e for e in entries if e.kind == "pagerduty"]
    assert escalated.actor == "pagerduty:PagerDuty"  # no agent: PagerDuty escalated by itself
    assert escalated.text == "PagerDuty incident #4821 escalated to Lee Secondary"
    assert escalated.data["pagerduty_incident"] == PD_INCIDENT
    assert (await world.get(incident.id)).state is IncidentState.TRIGGERED  # a fact, not a state change
    replies = [m.text for m in world.slack.thread(world.message().channel, world.message().ts)]
    assert any("escalated to Lee Secondary" in r for r in replies)

    # ... and the example rule saw it: its own incident, announced in the channel
    incidents = await world.services.incidents.store.list()
    [rule_incident] = [i for i in incidents if i.rule_id == "pagerduty-escalated"]
    assert rule_incident.title == "PagerDuty escalated: checkout-api p95 latency 2.4s (> 2s) in production"
    assert rule_incident.labels["incident_id"] == PD_INCIDENT
    assert any("escalated incident 4821 to Lee Secondary" in json.dumps(m.blocks) for m in world.slack.top_level())
    assert [e["event_action"] for e in world.alert_events()] == ["trigger"]

    # resolved in PagerDuty: our incident follows, and the rule's incident clears with its series
    await world.webhook("incident_resolved")
    assert (await world.get(incident.id)).resolved_by == "pagerduty:Dana Ops"
    rule_resolved = await world.get(rule_incident.id)
    assert rule_resolved.state is IncidentState.RESOLVED and rule_resolved.resolved_by == "rule:pagerduty-escalated"
    assert [e["event_action"] for e in world.alert_events()] == ["trigger"]


async def test_other_incident_events_become_timeline_entries(world: World, make_config: Any, make_app: Any,
                                                             tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path)
    incident = await world.open_and_page()
    # a note before anything linked the PagerDuty incident: its reference carries no key, so it matches nothing
    await world.webhook("incident_annotated", id="note-before-link")
    assert not [e for e in await world.timeline(incident.id) if e.kind == "pagerduty"]

    for name in ("incident_triggered", "incident_reassigned", "incident_priority_updated", "incident_delegated",
                 "incident_annotated", "incident_responder_added", "incident_status_update_published",
                 "incident_unacknowledged"):
        await world.webhook(name)
    texts = [e.text for e in await world.timeline(incident.id) if e.kind == "pagerduty"]
    assert texts == [
        "PagerDuty incident #4821 opened, assigned to Dana Ops",
        "PagerDuty incident #4821 reassigned to Lee Secondary",
        "PagerDuty incident #4821 priority changed to P1",
        "PagerDuty incident #4821 delegated to escalation policy Platform on-call",
        "note in PagerDuty: Rolled back to v1.42; watching p95.",
        "responder Lee Secondary requested in PagerDuty: Please help with the checkout latency",
        "status update in PagerDuty: Latency is back under 1s after the rollback.",
        "PagerDuty incident #4821 unacknowledged (it pages again)",
    ]
    assert (await world.get(incident.id)).state is IncidentState.TRIGGERED
    assert [e["event_action"] for e in world.alert_events()] == ["trigger"]


async def test_webhooks_for_incidents_responder_did_not_page_change_nothing(
        world: World, make_config: Any, make_app: Any, tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path)
    # an open incident with the same key, but responder never paged PagerDuty for it
    incident, _ = await world.services.incidents.open(
        key=KEY, rule_id="checkout-latency", title="checkout-api p95 latency above 2s", severity=Severity.CRITICAL,
        group={"service": "checkout-api"}, playbook=None, event=None, text="rule checkout-latency fired")
    entries = await world.timeline(incident.id)
    await world.webhook("incident_acknowledged")
    await world.webhook("incident_resolved", incident_key="grafana:5f2a9c1d7e3b8a40")
    await world.webhook("incident_escalated", incident_key=None)
    assert (await world.get(incident.id)).state is IncidentState.TRIGGERED
    assert await world.timeline(incident.id) == entries
    # and acking it in responder sends nothing: there is no alert to follow
    await world.services.incidents.acknowledge(incident.id, "slack:U123")
    await world.settle()
    assert world.pagerduty.events == []


async def test_retryable_failures_are_retried_and_permanent_ones_noted(world: World, make_config: Any,
                                                                       make_app: Any, tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path)
    incident = await world.open_and_page()
    world.pagerduty.fail_next(503)
    await world.services.incidents.acknowledge(incident.id, "slack:U123")
    await world.settle()
    assert world.pagerduty.alerts[KEY].status == "acknowledged"
    assert [r.path for r in world.pagerduty.requests[-2:]] == ["/v2/enqueue", "/v2/enqueue"]

    world.pagerduty.fail_next(403, body='{"status": "forbidden"}')
    await world.services.incidents.resolve(incident.id, "user:alice")
    await world.settle()
    assert world.pagerduty.alerts[KEY].status == "acknowledged"  # not resolved: the call was refused
    notes = [e.text for e in await world.timeline(incident.id) if e.actor == "sync:pagerduty"]
    assert notes[-1].startswith(f"could not resolve the PagerDuty alert {KEY}: pagerduty: POST /v2/enqueue: HTTP 403")
    assert ROUTING_KEY not in json.dumps(notes)
    assert (await world.get(incident.id)).state is IncidentState.RESOLVED  # responder's own state is unaffected


async def test_without_the_pagerduty_provider_webhooks_still_sync_in(world: World, make_config: Any, make_app: Any,
                                                                     tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path, pagerduty=False)
    assert world.services.pagerduty_sync.provider is None
    incident, _ = await world.services.incidents.open(
        key=KEY, rule_id="checkout-latency", title="checkout-api p95 latency above 2s", severity=Severity.CRITICAL,
        group={}, playbook=None, event=None, text="fired")
    # paged earlier (before the routing key was removed): the state survives in Redis
    await world.services.pagerduty_sync.state.set(incident.id, "pagerduty", dedup_key=KEY, status="triggered")
    await world.webhook("incident_acknowledged")
    assert (await world.get(incident.id)).acknowledged_by == "pagerduty:Dana Ops"
    await world.services.incidents.resolve(incident.id, "user:alice")
    await world.settle()
    assert world.pagerduty.requests == []


async def test_changes_made_as_pagerduty_are_never_sent_back(world: World, make_config: Any, make_app: Any,
                                                             tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path)
    incident = await world.open_and_page()
    # whoever writes a change in PagerDuty's name (here directly, with ProviderState still saying "triggered")
    await world.services.incidents.acknowledge(incident.id, "pagerduty:Dana Ops")
    await world.services.incidents.resolve(incident.id, "pagerduty:Dana Ops")
    await world.settle()
    assert [e["event_action"] for e in world.alert_events()] == ["trigger"]


async def test_slash_command_ack_acks_pagerduty_and_its_webhook_echo_changes_nothing(
        world: World, make_config: Any, make_app: Any, tmp_path: Path, clock: Any) -> None:
    """The same acceptance through the real Slack route: `/incident ack <id>`, signed with Slack's v0 algorithm."""
    from urllib.parse import urlencode

    from tests.chatops.conftest import SIGNING_SECRET, signed_headers

    config = CONFIG.replace('channel: "#incidents",', f'channel: "#incidents", signing_secret: "{SIGNING_SECRET}",')
    await world.start(make_config, make_app, tmp_path, config=config)
    incident = await world.open_and_page()
    message = world.message()
    form = {"team_id": "T0ACME001", "channel_id": "C0INC0001", "user_id": "U0DANA001", "user_name": "dana",
            "command": "/incident", "text": f"ack {incident.id}", "response_url": world.slack.response_url("cmd"),
            "trigger_id": "8123456789.1234567890.abc"}
    body = urlencode(form).encode()
    response = await world.client.post("/slack/commands", data=body,
                                       headers=signed_headers(body, int(clock.now().timestamp())))
    assert response.status == 200, await response.text()
    for _ in range(50):  # the command runs in the background
        if (await world.get(incident.id)).state is IncidentState.ACKNOWLEDGED:
            break
        await asyncio.sleep(0.02)
    await world.settle()

    acked = await world.get(incident.id)
    assert acked.state is IncidentState.ACKNOWLEDGED and acked.acknowledged_by == "slack:U0DANA001"
    [ack] = world.alert_events("acknowledge")
    assert ack["dedup_key"] == KEY and world.pagerduty.alerts[KEY].status == "acknowledged"
    assert any(u["ts"] == message.ts for u in world.slack.method_calls("chat.update"))
    assert "Acknowledged" in _blocks(world.message())

    entries = await world.timeline(incident.id)
    sent, slack_requests = len(world.pagerduty.events), len(world.slack.requests)
    await world.webhook("incident_acknowledged")
    assert await world.timeline(incident.id) == entries
    assert len(world.pagerduty.events) == sent and len(world.slack.requests) == slack_requests
