"""The embedded default: no REDIS_URL, fakeredis in process, background loops doing the whole job; /readyz."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from responder.app import EMBEDDED_WARNING, create_app
from responder.config.loader import load_config
from tests.conftest import PAYLOADS, free_port

ROOT = Path(__file__).resolve().parents[1]


async def test_embedded_default_runs_the_bundled_runbook(caplog: Any) -> None:
    loaded = load_config(ROOT / "responder.yaml", env={})
    app = create_app(loaded, env={})  # no REDIS_URL, real clock, background consumer and tick loops
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        body = (PAYLOADS / "sentry" / "metric_alert_error_rate_critical.json").read_bytes()
        response = await client.post("/hooks/sentry", data=body, headers={
            "Content-Type": "application/json", "Sentry-Hook-Resource": "metric_alert"})
        assert response.status == 202
        detail: dict[str, Any] = {}
        for _ in range(100):
            incidents = (await (await client.get("/api/v1/incidents")).json())["incidents"]
            if incidents:
                detail = await (await client.get(f"/api/v1/incidents/{incidents[0]['id']}")).json()
                if detail["runs"] and detail["runs"][0]["status"] == "completed":
                    break
            await asyncio.sleep(0.05)
        assert detail["rule_id"] == "api-error-rate"
        steps = {s["step"]: s for s in detail["runs"][0]["steps"]}
        assert steps["status degraded"]["status"] == "ok"
        assert steps["rollback"]["status"] == "skipped"
        assert steps["rollback"]["reason"] == "no credentials for railway (providers.railway is not configured)"
        status = await (await client.get("/status.json")).json()
        assert {c["id"]: c["status"] for c in status["components"]}["api"] == "degraded_performance"
        assert (await client.get("/readyz")).status == 200
    assert EMBEDDED_WARNING.startswith("EMBEDDED MODE")


async def test_readyz_is_503_when_redis_is_unreachable(make_config: Any) -> None:
    """Without the outage spool (spool.enabled: false) an unreachable Redis means not ready and 503 + Retry-After;
    with it, see tests/reliability/test_redis_outage.py."""
    loaded = make_config({"responder.yaml": "redis: {connect_timeout: 200ms, socket_timeout: 200ms, retries: 0}\n"
                                            "spool: {enabled: false}\n"})
    app = create_app(loaded, env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["checks"]["redis"] == "unreachable"
        assert (await client.get("/healthz")).status == 200
        hook = await client.post("/hooks/alertmanager", data=(PAYLOADS / "alertmanager/firing.json").read_bytes(),
                                 headers={"Content-Type": "application/json"})
        assert hook.status == 503 and hook.headers["Retry-After"] == "5"
