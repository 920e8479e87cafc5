"""GET /api/v1/probes (last result, last N, uptime 24 h / 7 d) and the status page's history bars."""

from __future__ import annotations

from typing import Any

from responder.clock import FakeClock
from tests.probes.conftest import HealthServer

CONFIG = """
server: {api_tokens: {read: "${READ_TOKEN}"}}
status_page:
  components:
    - {id: api, name: API}
    - {id: workers, name: Background workers}
    - {id: web, name: Web app}
"""

PROBES = """
probes:
  - id: api-health
    description: The API's /health
    http:
      url: ${HEALTH_URL}
      headers: {Authorization: "Bearer ${HEALTH_TOKEN}"}
      expect: {json: {checks.database: healthy}}
    every: 30s
    service: api
    component: api
  - id: queue-depth
    redis: {url: "${QUEUE_REDIS_URL:-}", length_of: "bull:sync-worker:failed", max: 50}
    component: workers
"""

AUTH = {"Authorization": "Bearer read-token-123456"}


async def app_with_probes(make_config: Any, make_app: Any, health: HealthServer) -> Any:
    loaded = make_config({"responder.yaml": CONFIG, "probes/p.yaml": PROBES},
                         env={"READ_TOKEN": "read-token-123456", "HEALTH_URL": health.url,
                              "HEALTH_TOKEN": "health-secret-abcdef"})
    return await make_app(loaded)


async def run(services: Any, clock: FakeClock, *, healthy: bool, health: HealthServer, times: int = 1) -> None:
    health.healthy = healthy
    for _ in range(times):
        assert await services.probes.tick("api-health") is not None
        clock.advance(30)


async def test_probes_api(make_config: Any, make_app: Any, clock: FakeClock, health: HealthServer) -> None:
    client, services = await app_with_probes(make_config, make_app, health)
    await run(services, clock, healthy=True, health=health, times=3)
    await run(services, clock, healthy=False, health=health)

    assert (await client.get("/api/v1/probes")).status == 401
    response = await client.get("/api/v1/probes", headers=AUTH)
    assert response.status == 200
    text = await response.text()
    assert health.url not in text and "health-secret-abcdef" not in text  # targets and headers stay private
    body = await response.json()
    api, queue = body["probes"]
    assert api["id"] == "api-health" and api["kind"] == "http" and api["enabled"] is True
    assert api["component"] == "api" and api["service"] == "api" and api["every_seconds"] == 30
    assert api["last"]["status"] == "failing" and api["last"]["reason"] == "checks.database is 'unhealthy' " \
                                                                            "(expected 'healthy')"
    assert [r["status"] for r in api["results"]] == ["failing", "ok", "ok", "ok"]  # newest first
    assert api["last"] == api["results"][0] and api["last"]["replica"] == services.probes.owner
    assert api["uptime_24h"] == 75.0 and api["uptime_7d"] == 75.0
    assert queue["enabled"] is False and queue["disabled_reason"].startswith("redis.url is empty")
    assert queue["last"] is None and queue["results"] == [] and queue["uptime_24h"] is None

    short = await (await client.get("/api/v1/probes?results=2", headers=AUTH)).json()
    assert len(short["probes"][0]["results"]) == 2
    none = await (await client.get("/api/v1/probes?results=0", headers=AUTH)).json()
    assert none["probes"][0]["results"] == [] and none["probes"][0]["last"]["status"] == "failing"
    bad = await client.get("/api/v1/probes?results=lots", headers=AUTH)
    assert bad.status == 400 and (await bad.json())["field"] == "results"

    detail = await client.get("/api/v1/probes/api-health", headers=AUTH)
    doc = await detail.json()
    assert detail.status == 200 and len(doc["results"]) == 4 and doc["uptime_24h"] == 75.0
    assert doc["results"][0]["value"] is not None and doc["results"][0]["slot"] == doc["results"][1]["slot"] + 1
    missing = await client.get("/api/v1/probes/nope", headers=AUTH)
    assert missing.status == 404 and (await missing.json())["field"] == "id"


async def test_uptime_over_24_hours_and_7_days(make_config: Any, make_app: Any, clock: FakeClock,
                                               health: HealthServer) -> None:
    client, services = await app_with_probes(make_config, make_app, health)
    # one result an hour for 30 hours: failing in the first 6, ok in the last 24
    for hour in range(30):
        health.healthy = hour >= 6
        assert await services.probes.tick("api-health") is not None
        clock.advance(hours=1)
    clock.advance(minutes=-30)  # still within the hour of the last result
    doc = await (await client.get("/api/v1/probes/api-health", headers=AUTH)).json()
    assert doc["uptime_24h"] == 100.0 and doc["uptime_7d"] == 80.0
    clock.advance(hours=24 * 7)  # a week later nothing is left in either window
    doc = await (await client.get("/api/v1/probes/api-health", headers=AUTH)).json()
    assert doc["uptime_24h"] is None and doc["uptime_7d"] is None
    assert len(doc["results"]) == 30  # the last results are kept regardless


async def test_results_are_capped(make_config: Any, make_app: Any, clock: FakeClock, health: HealthServer) -> None:
    loaded = make_config({"responder.yaml": "probing: {keep_results: 5}\n",
                          "probes/p.yaml": f"probes:\n  - id: h\n    http: {{url: '{health.url}'}}\n"})
    client, services = await make_app(loaded)
    for _ in range(8):
        assert await services.probes.tick("h") is not None
        clock.advance(30)
    doc = await (await client.get("/api/v1/probes/h")).json()  # no read token configured: open
    assert len(doc["results"]) == 5 and doc["uptime_24h"] == 100.0
    assert (await services.probes.history(["h"], 100))["h"].results[0] == doc["results"][0]


async def test_status_page_shows_history_bars(make_config: Any, make_app: Any, clock: FakeClock,
                                              health: HealthServer) -> None:
    client, services = await app_with_probes(make_config, make_app, health)
    await run(services, clock, healthy=True, health=health, times=2)
    await run(services, clock, healthy=False, health=health)
    await run(services, clock, healthy=True, health=health)
    # the workers component has no runnable probe: its bars are its status changes
    await services.status.set("workers", "degraded_performance", "restarting", clock.now())
    clock.advance(60)
    await services.status.set("workers", "operational", "recovered", clock.now())

    doc = await (await client.get("/status.json")).json()
    api, workers, web = doc["components"]
    assert api["probe"] == "api-health" and api["uptime_24h"] == 75.0
    assert [b["status"] for b in api["bars"]] == ["ok", "ok", "failing", "ok"]  # oldest first
    assert [b["level"] for b in api["bars"]] == ["operational", "operational", "major_outage", "operational"]
    assert all(set(b) == {"status", "at", "level"} for b in api["bars"])  # no reasons on the public page
    assert workers["probe"] is None and [b["status"] for b in workers["bars"]] == ["degraded_performance",
                                                                                   "operational"]
    assert web["bars"] == []

    page = await (await client.get("/status")).text()
    assert page.count('class="bar operational"') == 4 and page.count('class="bar major_outage"') == 1
    assert page.count('class="bar degraded_performance"') == 1
    assert "75.0% uptime over 24 h" in page
    assert "unhealthy" not in page
