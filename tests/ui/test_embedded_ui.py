"""The dashboard on the embedded store (fakeredis) with the bundled configuration: every page renders."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from responder.app import create_app
from responder.config.loader import load_config
from tests.conftest import PAYLOADS

ROOT = Path(__file__).resolve().parents[2]


async def test_every_page_on_the_embedded_store_with_the_bundled_runbook() -> None:
    app = create_app(load_config(ROOT / "responder.yaml", env={}), env={})
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        body = (PAYLOADS / "sentry" / "metric_alert_error_rate_critical.json").read_bytes()
        response = await client.post("/hooks/sentry", data=body, headers={
            "Content-Type": "application/json", "Sentry-Hook-Resource": "metric_alert"})
        assert response.status == 202
        incidents: list[Any] = []
        for _ in range(100):
            incidents = (await (await client.get("/api/v1/incidents")).json())["incidents"]
            if incidents:
                break
            await asyncio.sleep(0.05)
        assert incidents
        page = await (await client.get("/ui/incidents")).text()
        assert "last hour: 1 event, peak 1/min" in page
        assert f'data-id="{incidents[0]["id"]}"' in page
        for path in (f"/ui/incidents/{incidents[0]['id']}", "/ui/probes", "/ui/silences", "/ui/login",
                     f"/ui/incidents/{incidents[0]['id']}/postmortem.md"):
            response = await client.get(path)
            assert response.status == 200, path
        page = await (await client.get(f"/ui/incidents/{incidents[0]['id']}")).text()
        assert "rollback-api" in page and "Actions are disabled" in page  # the bundled config has no write token
