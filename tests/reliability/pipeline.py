"""The whole daemon in process on a given REDIS_URL (background loops on), fed with Alertmanager webhooks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from responder.app import create_app
from responder.config.loader import load_config
from responder.keys import SERVICES
from responder.services import Services
from tests.conftest import write_config

RULES = """
rules:
  - id: service-down
    match: {source: alertmanager, name: ServiceDown}
    group_by: [service]
    severity: critical
    playbook: notify
"""

PLAYBOOKS = """
playbooks:
  - id: notify
    steps:
      - name: notify
        action: http.request
        with:
          url: "${SINK}/notify/{{ incident.service }}"
          json: {incident: "{{ incident.id }}", service: "{{ incident.service }}"}
"""

CONFIG = "engine: {tick: 100ms}\n"


def alert(service: str, status: str = "firing") -> dict[str, Any]:
    """An Alertmanager webhook (payload version 4) with one ServiceDown alert for `service`."""
    labels = {"alertname": "ServiceDown", "service": service, "severity": "critical"}
    return {
        "version": "4", "status": status, "receiver": "responder", "groupKey": f"{{}}:{{service=\"{service}\"}}",
        "groupLabels": {"alertname": "ServiceDown"}, "commonLabels": labels, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "truncatedAlerts": 0,
        "alerts": [{"status": status, "labels": labels, "annotations": {"summary": f"{service} is down"},
                    "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph", "fingerprint": f"fp-{service}"}],
    }


class Daemon:
    """The app with its real consumer and tick loops, as `responder run` builds it."""

    def __init__(self, client: TestClient[Any, Any], services: Services) -> None:
        self.client = client
        self.services = services

    async def send(self, service: str) -> int:
        reply = await self.client.post("/hooks/alertmanager", data=json.dumps(alert(service)),
                                       headers={"Content-Type": "application/json"})
        return reply.status

    async def incidents(self) -> list[dict[str, Any]]:
        reply = await self.client.get("/api/v1/incidents")
        assert reply.status == 200, await reply.text()
        found: list[dict[str, Any]] = (await reply.json())["incidents"]
        return found

    async def incident_for(self, service: str, within: float = 15) -> dict[str, Any]:
        """Wait until the rule fired for `service` and its playbook run completed; return the incident's detail."""
        deadline = time.monotonic() + within
        while True:
            for incident in await self.incidents():
                if incident["service"] == service:
                    detail: dict[str, Any] = await (await self.client.get(f"/api/v1/incidents/{incident['id']}")).json()
                    runs = detail.get("runs") or []
                    if runs and runs[0].get("status") == "completed":
                        return detail
            if time.monotonic() > deadline:
                raise AssertionError(f"no completed incident for {service} after {within} s: "
                                     f"{await self.incidents()}")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def daemon(root: Path, redis_url: str, sink_url: str) -> AsyncIterator[Daemon]:
    config = write_config(root, {"responder.yaml": CONFIG, "rules/r.yaml": RULES, "playbooks/p.yaml": PLAYBOOKS})
    loaded = load_config(config, env={"SINK": sink_url})
    app = create_app(loaded, env={"REDIS_URL": redis_url}, background=True)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield Daemon(client, app[SERVICES])
    finally:
        await client.close()


async def eventually(check: Callable[[], Any], within: float, what: str) -> None:
    """Poll the blocking `check` (in a thread) until it is true."""
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.1)
