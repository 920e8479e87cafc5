"""The runbook end to end on the fake clock: the bundled api-health probe against a local /health, the bundled
rule "health failing for over 5 minutes" and the bundled restart-workers playbook."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from responder.clock import FakeClock
from responder.services import Services
from tests.probes.conftest import HealthServer

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ["responder.yaml", "rules/runbook.yaml", "playbooks/runbook.yaml", "probes/runbook.yaml"]


async def step(services: Services, clock: FakeClock) -> None:
    """What a replica's loops do in 30 s: the probe's tick, the engine reading the stream, the timer tick."""
    assert await services.probes.tick("api-health") is not None
    while await services.consumer.poll(block_ms=0):
        pass
    await services.consumer.tick()
    await services.runner.drain()
    clock.advance(30)


async def test_health_failing_for_five_minutes_restarts_the_workers(make_config: Any, make_app: Any,
                                                                    clock: FakeClock, health: HealthServer) -> None:
    loaded = make_config({name: (ROOT / name).read_text() for name in BUNDLED}, env={"API_HEALTH_URL": health.url})
    assert "api-health" not in loaded.disabled_probes
    client, services = await make_app(loaded)
    start = clock.now()

    health.healthy = False  # checks.database: unhealthy from 0:00
    while clock.now() - start < timedelta(minutes=5):
        await step(services, clock)  # 0:00 ... 4:30: failing, not yet for 5 minutes
        assert await services.incidents.store.list() == []
    await step(services, clock)  # 5:00

    [incident] = await services.incidents.store.list()
    assert incident.rule_id == "api-health-failing" and incident.service == "api"
    assert incident.severity.value == "critical" and incident.created_at - start == timedelta(minutes=5)
    detail = await (await client.get(f"/api/v1/incidents/{incident.id}")).json()
    [run] = detail["runs"]
    assert run["playbook"] == "restart-workers"
    steps = {s["step"]: s for s in run["steps"]}
    assert steps["status degraded"]["status"] == "ok"
    assert steps["restart"]["status"] == "skipped"
    assert steps["restart"]["reason"].startswith("no credentials for railway")
    texts = [e["text"] for e in detail["timeline"]]
    assert "playbook restart-workers started" in texts
    status = await (await client.get("/status.json")).json()
    workers = next(c for c in status["components"] if c["id"] == "workers")
    assert workers["status"] == "degraded_performance"
    api = next(c for c in status["components"] if c["id"] == "api")
    assert api["probe"] == "api-health" and {b["status"] for b in api["bars"]} == {"failing"}

    # the API recovers: the next ok result resolves the incident and on_resolve restores the component
    health.healthy = True
    await step(services, clock)
    await step(services, clock)
    [incident] = await services.incidents.store.list()
    assert incident.state.value == "resolved"
    status = await (await client.get("/status.json")).json()
    workers = next(c for c in status["components"] if c["id"] == "workers")
    assert workers["status"] == "operational"


VERIFY_RULES = """
rules:
  - id: health-failing
    match: {source: probe, name: api-health}
    when: {status: failing}
    group_by: [service]
    playbook: verify-health
"""

VERIFY_PLAYBOOKS = """
playbooks:
  - id: verify-health
    steps:
      - name: verify
        action: verify
        with: {probe: api-health, within: 30s, interval: 10s}
        timeout: 2m
        on_failure:
          - {name: note, action: incident.note, with: {text: "still unhealthy"}}
"""


async def test_a_verify_step_runs_the_named_probe(make_config: Any, make_app: Any, clock: FakeClock,
                                                  health: HealthServer) -> None:
    loaded = make_config({"rules/r.yaml": VERIFY_RULES, "playbooks/p.yaml": VERIFY_PLAYBOOKS,
                          **{name: (ROOT / name).read_text() for name in ("responder.yaml", "probes/runbook.yaml")}},
                         env={"API_HEALTH_URL": health.url})
    client, services = await make_app(loaded)
    health.healthy = False
    await step(services, clock)
    [incident] = await services.incidents.store.list()
    detail = await (await client.get(f"/api/v1/incidents/{incident.id}")).json()
    steps = {s["step"]: s for s in detail["runs"][0]["steps"]}
    assert steps["verify"]["status"] == "failed"
    assert "api-health still unhealthy after 30s" in steps["verify"]["error"]
    assert steps["verify"]["error"].endswith("(4 checks): status is 'unhealthy' (expected 'healthy')")
    assert steps["note"]["status"] == "ok"
    assert health.hits >= 4  # the scheduled run plus the verify step's own checks
