"""The bundled rollback-api playbook end to end, on a real redis-server, against fake Railway, Statuspage,
Slack and PagerDuty (through slack-sdk and the `pagerduty` client), with the api-health probe checking a
local /health server. The bundled rules, playbooks and probes are used as shipped."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from responder.incidents.model import Incident
from tests.conftest import PAYLOADS, Sink
from tests.fakes.pagerduty import PagerDutyFake
from tests.fakes.railway import RailwayFake
from tests.fakes.slack import TOKEN as SLACK_TOKEN
from tests.fakes.slack import SlackFake
from tests.fakes.statuspage import StatuspageFake

ROOT = Path(__file__).resolve().parent.parent
RAILWAY_TOKEN = "railway-token-7f3a9c2e"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"
STATUSPAGE_KEY = "statuspage-key-5b8e1d4f"

CONFIG = """
server: {public_url: "https://responder.example.com"}
providers:
  railway: {token: "${RAILWAY_TOKEN}", project_id: "${RAILWAY_PROJECT}", base_url: "${RAILWAY_URL}"}
  slack: {bot_token: "${SLACK_BOT_TOKEN}", channel: "#incidents", base_url: "${SLACK_URL}"}
  pagerduty: {routing_key: "${PAGERDUTY_ROUTING_KEY}", base_url: "${PAGERDUTY_URL}", ca_file: "${PAGERDUTY_CA}"}
  statuspage: {api_key: "${STATUSPAGE_API_KEY}", page_id: "${STATUSPAGE_PAGE_ID}", base_url: "${STATUSPAGE_URL}"}
status_page:
  components: [{id: api, name: API}, {id: workers, name: Workers}, {id: web, name: Web}]
"""


class World:
    """The fakes, the health endpoint and the app, wired together."""

    def __init__(self, railway: RailwayFake, slack: SlackFake, pagerduty: PagerDutyFake,
                 statuspage: StatuspageFake, health: Sink) -> None:
        self.railway = railway
        self.slack = slack
        self.pagerduty = pagerduty
        self.statuspage = statuspage
        self.health = health
        self.healthy = True
        self.client: Any = None
        self.services: Any = None
        self.ids: dict[str, str] = {}

    @property
    def fakes(self) -> list[Any]:
        return [self.railway, self.slack, self.pagerduty, self.statuspage]

    async def script(self, request: web.Request) -> web.Response:
        state = "healthy" if self.healthy else "unhealthy"
        return web.json_response({"status": state, "checks": {"database": state, "redis": "healthy"}},
                                 status=200 if self.healthy else 503)

    async def start(self, make_config: Any, make_app: Any, tmp_path: Path, extra: str = "") -> None:
        ca = tmp_path / "pagerduty-ca.pem"
        self.pagerduty.ca.cert_pem.write_to_path(str(ca))
        env = {"RAILWAY_TOKEN": RAILWAY_TOKEN, "RAILWAY_PROJECT": self.railway.project_id,
               "RAILWAY_URL": self.railway.endpoint, "SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_URL": self.slack.api_url,
               "PAGERDUTY_ROUTING_KEY": ROUTING_KEY, "PAGERDUTY_URL": self.pagerduty.url, "PAGERDUTY_CA": str(ca),
               "STATUSPAGE_API_KEY": STATUSPAGE_KEY, "STATUSPAGE_PAGE_ID": self.statuspage.page_id,
               "STATUSPAGE_URL": self.statuspage.url, "API_HEALTH_URL": f"{self.health.url}/health"}
        files = {"responder.yaml": CONFIG + extra}
        for folder in ("rules", "playbooks", "probes"):
            files[f"{folder}/runbook.yaml"] = (ROOT / folder / "runbook.yaml").read_text()
        self.client, self.services = await make_app(make_config(files, env=env))

    async def sentry(self, action: str = "critical", identifier: str = "64") -> None:
        name = "metric_alert_error_rate_critical.json" if action == "critical" else \
            "metric_alert_error_rate_resolved.json"
        payload = json.loads((PAYLOADS / "sentry" / name).read_text())
        payload = copy.deepcopy(payload)
        payload["data"]["metric_alert"]["identifier"] = identifier
        response = await self.client.post("/hooks/sentry", json=payload,
                                          headers={"Sentry-Hook-Resource": "metric_alert"})
        assert response.status == 202, await response.text()
        await self.services.consumer.poll(block_ms=100)
        await self.settle()

    async def settle(self) -> None:
        await self.services.runner.drain()
        await self.services.slack_sync.flush()

    async def incidents(self) -> list[Incident]:
        return sorted(await self.services.incidents.store.list(), key=lambda i: int(i.id))

    async def timeline(self, incident_id: str) -> list[Any]:
        return list(await self.services.incidents.store.timeline(incident_id))

    def rollbacks(self) -> list[dict[str, Any]]:
        return [variables for name, variables in self.railway.mutations if name == "deploymentRollback"]

    def triggers(self) -> list[dict[str, Any]]:
        return [e for e in self.pagerduty.events if e.get("event_action") == "trigger"]


@pytest.fixture
async def world(sink: Sink) -> AsyncIterator[World]:
    railway = RailwayFake(token=RAILWAY_TOKEN)
    slack = SlackFake()
    pagerduty = PagerDutyFake(routing_key=ROUTING_KEY)
    statuspage = StatuspageFake(api_key=STATUSPAGE_KEY, components=["API", "Background workers", "Web app"])
    w = World(railway, slack, pagerduty, statuspage, sink)
    sink.script = w.script
    for fake in w.fakes:
        await fake.start()
    # the API in production: v1 ran fine, v2 is live (and broken)
    w.ids = {"v1": railway.add_deployment("api", status="REMOVED"), "v2": railway.add_deployment("api")}
    yield w
    for fake in w.fakes:
        await fake.close()


async def test_rollback_verified_resolves_and_updates_everyone(world: World, make_config: Any, make_app: Any,
                                                               tmp_path: Path, clock: Any) -> None:
    await world.start(make_config, make_app, tmp_path)
    started = clock.now()
    await world.sentry("critical")

    [incident] = await world.incidents()
    assert incident.rule_id == "api-error-rate" and incident.service == "api"
    assert incident.state.value == "resolved" and incident.resolved_by == "playbook step resolve"
    # rolled back exactly once, to the previous deployment
    assert len(world.rollbacks()) == 1 and world.rollbacks()[0]["id"] == world.ids["v1"]
    assert 60 <= (clock.now() - started).total_seconds() <= 75  # settle 30 s, two checks 30 s apart, Statuspage pacing
    # one Slack message, updated in place to "resolved", with the story threaded under it
    [message] = world.slack.top_level()
    updates = world.slack.method_calls("chat.update")
    assert updates and {u["ts"] for u in updates} == {message.ts}
    assert "Resolved" in json.dumps(message.blocks) and "incident_ack" not in json.dumps(message.blocks)
    replies = [m.text for m in world.slack.thread(message.channel, message.ts)]
    assert any("rollback" in r for r in replies) and any("resolved" in r for r in replies)
    # Statuspage: the public incident was opened and resolved, the component is operational again
    [public] = world.statuspage.incidents.values()
    assert public["status"] == "resolved"
    assert world.statuspage.component("API")["status"] == "operational"
    # the built-in page too
    assert (await world.services.status.components())["api"]["status"] == "operational"
    # PagerDuty: nobody paged; the rollback was recorded as a change event
    assert world.triggers() == []
    assert "rolled back api" in world.pagerduty.change_events[0]["payload"]["summary"]
    # no secret anywhere in the incident's story
    story = json.dumps([e.model_dump(mode="json") for e in await world.timeline(incident.id)])
    for secret in (RAILWAY_TOKEN, ROUTING_KEY, STATUSPAGE_KEY, SLACK_TOKEN):
        assert secret not in story


async def test_still_failing_after_rollback_pages_with_the_incident_key(world: World, make_config: Any,
                                                                        make_app: Any, tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path)
    world.healthy = False
    await world.sentry("critical")

    [incident] = await world.incidents()
    assert len(world.rollbacks()) == 1
    [trigger] = world.triggers()
    assert trigger["dedup_key"] == incident.key
    assert trigger["payload"]["severity"] == "critical"
    assert "still unhealthy after the rollback" in trigger["payload"]["summary"]
    assert world.pagerduty.alerts[incident.key].status == "triggered"
    assert incident.state.value != "resolved"
    records = {e.actor: e.text for e in await world.timeline(incident.id)}
    assert "verify failed" in records["step:verify"]
    [message] = world.slack.top_level()
    assert any("on-call paged" in m.text for m in world.slack.thread(message.channel, message.ts))
    assert world.statuspage.component("API")["status"] == "degraded_performance"


async def test_second_firing_inside_the_budget_pages_instead_of_rolling_back(world: World, make_config: Any,
                                                                            make_app: Any, tmp_path: Path,
                                                                            clock: Any) -> None:
    await world.start(make_config, make_app, tmp_path)
    await world.sentry("critical", identifier="64")
    await world.sentry("resolved", identifier="64")
    clock.advance(10 * 60)
    await world.sentry("critical", identifier="65")  # the error rate is back, 12 minutes after the rollback

    first, second = await world.incidents()
    assert first.state.value == "resolved"
    assert len(world.rollbacks()) == 1  # not rolled back again
    assert second.automation_frozen and "at most 1 rollback of railway:api@production per 30m" in \
        (second.frozen_reason or "")
    [trigger] = world.triggers()
    assert trigger["dedup_key"] == second.key
    assert "failed or was refused" in trigger["payload"]["summary"]
    texts = [e.text for e in await world.timeline(second.id)]
    assert any(t.startswith("automation frozen: remediation budget exhausted") for t in texts)

    # after the window, automation may roll back again (a new incident, not the frozen one)
    await world.services.incidents.resolve(second.id, "user:alice")
    await world.sentry("resolved", identifier="65")
    clock.advance(31 * 60)
    await world.sentry("critical", identifier="66")
    assert len(world.rollbacks()) == 2


async def test_dry_run_calls_no_fake_and_records_the_whole_plan(world: World, make_config: Any, make_app: Any,
                                                                tmp_path: Path) -> None:
    await world.start(make_config, make_app, tmp_path, extra="automation: {dry_run: true}\n")
    before = {fake.name: len(fake.requests) for fake in world.fakes}
    await world.sentry("critical")
    assert {fake.name: len(fake.requests) for fake in world.fakes} == before
    assert world.health.requests == []

    [incident] = await world.incidents()
    assert incident.state.value == "triggered"
    steps = [e for e in await world.timeline(incident.id) if e.kind == "step"]
    assert [e.actor.removeprefix("step:") for e in steps] == [
        "announce", "status degraded", "public incident", "rollback", "page on rollback failure", "change event",
        "settle", "verify", "page", "escalation in slack", "status operational", "public resolution", "resolve"]
    by_step = {e.actor.removeprefix("step:"): e for e in steps}
    rollback = by_step["rollback"].data["plan"]
    assert rollback[-1]["method"] == "POST" and rollback[-1]["url"] == world.railway.endpoint
    assert "deploymentRollback" in json.dumps(rollback)
    assert rollback[-1]["headers"]["Authorization"] == "***"
    page = by_step["page"].data["plan"][0]
    assert page["url"].startswith(world.pagerduty.url) and page["body"]["routing_key"] == "***"
    assert page["body"]["dedup_key"] == incident.key
    assert by_step["verify"].data["plan"][0]["method"] == "PROBE"
    assert by_step["change event"].text.endswith("skipped: condition false: steps.rollback.status == 'ok'")
    story = json.dumps([e.model_dump(mode="json") for e in steps])
    for secret in (RAILWAY_TOKEN, ROUTING_KEY, STATUSPAGE_KEY, SLACK_TOKEN):
        assert secret not in story
