"""ChatOps test world: the real app on the real Redis, fake Slack (Web API, user groups, response_urls) and fake
Railway, and requests signed with Slack's real v0 algorithm (HMAC-SHA256 computed here, not by slack-sdk)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest

from responder.clock import FakeClock
from responder.events import Severity
from responder.incidents.model import Incident
from tests.conftest import Sink
from tests.fakes.railway import RailwayFake
from tests.fakes.slack import TOKEN as SLACK_TOKEN
from tests.fakes.slack import SlackFake

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
RAILWAY_TOKEN = "railway-token-7f3a9c2e"
READ_TOKEN = "audit-read-token"
FORM = "application/x-www-form-urlencoded"

#: dana may do anything herself; erin through the SRE user group; bob only reads, acks and notes
DANA, ERIN, BOB = "U0DANA001", "U0ERIN002", "U0BOB0003"
NAMES = {DANA: "dana", ERIN: "erin", BOB: "bob"}
SRE = "S0SRE0001"
INCIDENTS, OPS = "C0INC0001", "C0OPS0002"

CONFIG = """
server: {api_tokens: {read: "@READ@"}}
providers:
  railway: {token: "${RAILWAY_TOKEN}", project_id: "${RAILWAY_PROJECT}", base_url: "${RAILWAY_URL}"}
  slack: {bot_token: "${SLACK_BOT_TOKEN}", signing_secret: "${SLACK_SIGNING_SECRET}", channel: "#incidents",
          base_url: "${SLACK_URL}"}
chatops:
  slack:
    allow:
      destructive: [@DANA@, @SRE@]
    services:
      api:
        rollback: {action: railway.rollback, with: {service: api, environment: production}, argument: deployment_id}
        restart: {action: railway.restart, with: {service: api, environment: production}}
""".replace("@READ@", READ_TOKEN).replace("@DANA@", DANA).replace("@SRE@", SRE)


def sign(body: bytes, timestamp: int | str, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, timestamp: int | str, secret: str = SIGNING_SECRET) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": sign(body, timestamp, secret),
            "Content-Type": FORM}


class Chat:
    """The app plus the fakes; `command()` and `click()` send what Slack would send."""

    def __init__(self, slack: SlackFake, railway: RailwayFake, sink: Sink, clock: FakeClock) -> None:
        self.slack = slack
        self.railway = railway
        self.sink = sink
        self.clock = clock
        self.client: Any = None
        self.services: Any = None
        self.deployments: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        return {"RAILWAY_TOKEN": RAILWAY_TOKEN, "RAILWAY_PROJECT": self.railway.project_id,
                "RAILWAY_URL": self.railway.endpoint, "SLACK_BOT_TOKEN": SLACK_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_URL": self.slack.api_url, "SINK": self.sink.url}

    async def start(self, make_config: Any, make_app: Any, *, extra: str = "", config: str | None = None,
                    playbooks: str | None = None) -> Any:
        files = {"responder.yaml": (CONFIG if config is None else config) + extra}
        if playbooks:
            files["playbooks/p.yaml"] = playbooks
        self.client, self.services = await make_app(make_config(files, env=self.env()))
        return self.client

    # -- what Slack sends --------------------------------------------------------------------------
    def now(self) -> int:
        return int(self.clock.now().timestamp())

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
        return await self.client.post(path, data=body, headers=headers if headers is not None
                                      else signed_headers(body, self.now()))

    def command_body(self, text: str, user: str = DANA, channel: str = INCIDENTS, response_url: str | None = None,
                     command: str = "/incident") -> tuple[bytes, str]:
        url = response_url or self.slack.response_url("commands")
        form = {"token": "gIkuvaNzQIHg97ATvDxqgjtO", "team_id": "T0ACME001", "team_domain": "acme",
                "channel_id": channel, "channel_name": "incidents" if channel == INCIDENTS else "ops",
                "user_id": user, "user_name": NAMES.get(user, "someone"), "command": command, "text": text,
                "api_app_id": "A0RESP001", "is_enterprise_install": "false", "response_url": url,
                "trigger_id": f"8123456789.1234567890.{time.monotonic_ns():x}"}
        return urlencode(form).encode(), url

    async def command(self, text: str, user: str = DANA, channel: str = INCIDENTS,
                      command: str = "/incident") -> tuple[dict[str, Any], str]:
        """Run a slash command; (the immediate JSON answer, the response_url)."""
        body, url = self.command_body(text, user, channel, command=command)
        response = await self.post("/slack/commands", body)
        assert response.status == 200, await response.text()
        return await response.json(), url

    def click_body(self, action_id: str, value: str, user: str = DANA, channel: str = INCIDENTS,
                   message_ts: str = "1700000000.000100") -> tuple[bytes, str]:
        url = self.slack.response_url("actions")
        payload = {
            "type": "block_actions", "user": {"id": user, "username": NAMES.get(user, "someone"),
                                              "name": NAMES.get(user, "someone"), "team_id": "T0ACME001"},
            "api_app_id": "A0RESP001", "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
            "trigger_id": f"8123459999.1234567890.{time.monotonic_ns():x}",
            "team": {"id": "T0ACME001", "domain": "acme"},
            "enterprise": None, "is_enterprise_install": False, "channel": {"id": channel, "name": "incidents"},
            "message": {"type": "message", "ts": message_ts, "bot_id": "B0RESP001", "text": "", "blocks": []},
            "state": {"values": {}}, "response_url": url,
            "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                         "text": {"type": "plain_text", "text": action_id, "emoji": True},
                         "action_ts": f"{self.now()}.512345"}]}
        return urlencode({"payload": json.dumps(payload)}).encode(), url

    async def click(self, action_id: str, value: str, user: str = DANA, channel: str = INCIDENTS,
                    settle: bool = True) -> str:
        """Click a button; returns the click's response_url (after the work is done, unless settle=False)."""
        body, url = self.click_body(action_id, value, user, channel)
        response = await self.post("/slack/interactions", body)
        assert response.status == 200, await response.text()
        assert await response.text() == ""
        if settle:
            await self.settle()
        return url

    # -- waiting and looking -----------------------------------------------------------------------
    async def settle(self) -> None:
        """Everything in flight done: commands, clicks, their reports, runs, Slack sync."""
        for _ in range(3):
            await self.services.chatops.drain()
            await self.services.runner.drain()
            await self.services.chatops.drain()
            if self.services.slack_sync is not None:
                await self.services.slack_sync.flush()

    async def audit(self, **query: str) -> list[dict[str, Any]]:
        response = await self.client.get("/api/v1/audit", params=query,
                                         headers={"Authorization": f"Bearer {READ_TOKEN}"})
        assert response.status == 200, await response.text()
        return list((await response.json())["entries"])

    async def incident(self, title: str = "API error rate above 5%", service: str | None = "api") -> Incident:
        incident, _ = await self.services.incidents.open(
            key=f"test:{title}", rule_id="api-error-rate", title=title, severity=Severity.CRITICAL,
            group={"service": service} if service else {}, playbook=None, event=None, text="rule fired")
        if service is None:
            return incident
        return incident

    async def timeline(self, incident_id: str) -> list[Any]:
        return list(await self.services.incidents.store.timeline(incident_id))

    def rollbacks(self) -> list[dict[str, Any]]:
        return [v for name, v in self.railway.mutations if name == "deploymentRollback"]

    async def until(self, predicate: Any, seconds: float = 3.0) -> None:
        """Wait (briefly, in real time) for something a background task does."""
        async with asyncio.timeout(seconds):
            while not await predicate():  # noqa: ASYNC110 - the state is in Redis, nothing to wait on here
                await asyncio.sleep(0.005)


@pytest.fixture
async def chat(sink: Sink, clock: FakeClock) -> AsyncIterator[Chat]:
    slack = SlackFake(usergroups={SRE: [ERIN, "U0FRED004"]})
    railway = RailwayFake(token=RAILWAY_TOKEN)
    await slack.start()
    await railway.start()
    world = Chat(slack, railway, sink, clock)
    # api in production: v1 ran fine, v2 is live
    world.deployments = {"v1": railway.add_deployment("api", status="REMOVED"), "v2": railway.add_deployment("api")}
    yield world
    await slack.close()
    await railway.close()
