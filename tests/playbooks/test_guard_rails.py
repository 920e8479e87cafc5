"""verify, dry-run and repeat_every on a real Redis, with the fake clock and a local HTTP server."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.conftest import Sink
from tests.playbooks.test_runner import open_incident

VERIFY = """
playbooks:
  - id: p
    steps:
      - name: verify
        action: verify
        with: {url: "${SINK}/health", json: {"checks.database": healthy}, within: 2m, interval: 30s}
        on_failure:
          - {name: page, action: http.request, with: {url: "${SINK}/page"}}
"""


def health_server(sink: Sink, healthy_after: int) -> dict[str, int]:
    """/health answers unhealthy JSON for the first `healthy_after` calls, then healthy."""
    calls = {"health": 0}

    async def script(request: web.Request) -> web.Response:
        if request.path == "/health":
            calls["health"] += 1
            state = "healthy" if calls["health"] > healthy_after else "unhealthy"
            return web.json_response({"status": "ok", "checks": {"database": state, "redis": "healthy"}},
                                     status=200 if state == "healthy" else 503)
        return web.json_response({"ok": True})

    sink.script = script
    return calls


async def test_verify_passes_once_healthy(make_config: Any, make_app: Any, sink: Sink, clock: Any) -> None:
    calls = health_server(sink, healthy_after=2)
    _, services = await make_app(make_config({"playbooks/p.yaml": VERIFY}, env={"SINK": sink.url}))
    incident = await open_incident(services, "p")
    started = clock.now()
    run_id = await services.runner.start(incident, "p", None)
    await services.runner.drain()
    record = await services.runs.step_record(run_id, "verify")
    assert record["status"] == "ok", record
    assert record["output"]["outcome"] == "success" and record["output"]["checks"] == 3
    assert calls["health"] == 3 and "/page" not in sink.paths
    assert (clock.now() - started).total_seconds() == 60  # two 30 s pauses on the fake clock


async def test_verify_failure_runs_on_failure(make_config: Any, make_app: Any, sink: Sink, clock: Any) -> None:
    calls = health_server(sink, healthy_after=1000)
    _, services = await make_app(make_config({"playbooks/p.yaml": VERIFY}, env={"SINK": sink.url}))
    incident = await open_incident(services, "p")
    run_id = await services.runner.start(incident, "p", None)
    await services.runner.drain()
    record = await services.runs.step_record(run_id, "verify")
    assert record["status"] == "failed"
    assert "still unhealthy after 2m" in record["error"] and "HTTP 503" in record["error"]
    assert calls["health"] == 5  # at 0, 30, 60, 90 and 120 s
    assert sink.paths[-1] == "/page"


async def test_verify_inconclusive_when_nothing_answers(make_config: Any, make_app: Any, clock: Any) -> None:
    playbook = VERIFY.replace("${SINK}/health", "http://127.0.0.1:9/health").replace("${SINK}/page",
                                                                                      "http://127.0.0.1:9/page")
    _, services = await make_app(make_config({"playbooks/p.yaml": playbook}))
    incident = await open_incident(services, "p")
    run_id = await services.runner.start(incident, "p", None)
    await services.runner.drain()
    record = await services.runs.step_record(run_id, "verify")
    assert record["status"] == "failed" and record["error"].startswith("verify inconclusive")


async def test_verify_params_checked_at_load(make_config: Any) -> None:
    import pytest

    from responder.errors import ConfigError

    bad = 'playbooks:\n  - id: p\n    steps:\n      - {name: v, action: verify, with: {within: 1m}}\n'
    with pytest.raises(ConfigError) as info:
        make_config({"playbooks/p.yaml": bad})
    assert "playbooks/p.yaml:4" in str(info.value) and "exactly one of `url` or `probe`" in str(info.value)


DRY = """
playbooks:
  - id: p
    steps:
      - name: call
        action: http.request
        with: {url: "${SINK}/deploy-hook", json: {service: "{{ incident.service }}", token: "${HOOK_TOKEN}"},
               headers: {Authorization: "Bearer ${HOOK_TOKEN}"}}
        on_failure:
          - {name: page, action: http.request, with: {url: "${SINK}/page"}}
      - {name: status, action: status.set, with: {component: api, status: major_outage}}
      - {name: done, action: incident.resolve, with: {note: fixed}}
"""


async def test_dry_run_calls_nothing_and_records_the_plan(make_config: Any, make_app: Any, sink: Sink) -> None:
    env = {"SINK": sink.url, "HOOK_TOKEN": "hook-secret-123456"}
    loaded = make_config({"playbooks/p.yaml": DRY.replace("steps:", "dry_run: true\n    steps:", 1)}, env=env)
    _, services = await make_app(loaded)
    incident = await open_incident(services, "p")
    run_id = await services.runner.start(incident, "p", None)
    await services.runner.drain()
    assert sink.requests == []
    assert await services.status.components() == {}
    after = await services.incidents.get(incident.id)
    assert after.state.value == "triggered"  # not resolved, never mitigating
    timeline = await services.incidents.store.timeline(incident.id)
    planned = [e for e in timeline if e.kind == "step"]
    assert [e.actor for e in planned] == ["step:call", "step:page", "step:status", "step:done"]
    call = planned[0].data["plan"][0]
    assert call["method"] == "POST" and call["url"] == f"{sink.url}/deploy-hook"
    assert call["headers"]["Authorization"] == "***"
    assert call["body"]["token"] == "***" and "service" in call["body"]
    assert "hook-secret-123456" not in json.dumps([e.model_dump(mode="json") for e in timeline])
    assert (await services.runs.step_record(run_id, "status"))["status"] == "dry-run"


async def test_global_dry_run_and_per_run_override(make_config: Any, make_app: Any, sink: Sink) -> None:
    env = {"SINK": sink.url, "HOOK_TOKEN": "hook-secret-123456"}
    files = {"responder.yaml": "automation: {dry_run: true}\n", "playbooks/p.yaml": DRY}
    _, services = await make_app(make_config(files, env=env))
    incident = await open_incident(services, "p")
    await services.runner.start(incident, "p", None)
    await services.runner.drain()
    assert sink.requests == []
    await services.runner.start(incident, "p", None, phase="manual", dry_run=False, actor="user:alice")
    await services.runner.drain()
    assert sink.paths == ["/deploy-hook"]
    assert (await services.incidents.get(incident.id)).state.value == "resolved"


REPEAT = """
playbooks:
  - id: p
    steps:
      - name: status update
        action: http.request
        with: {url: "${SINK}/status"}
        repeat_every: 15m
      - {name: once, action: http.request, with: {url: "${SINK}/once"}}
"""


async def test_repeat_every_while_open(make_config: Any, make_app: Any, sink: Sink, clock: Any) -> None:
    _, services = await make_app(make_config({"playbooks/p.yaml": REPEAT}, env={"SINK": sink.url}))
    _, other = await make_app(make_config({"playbooks/p.yaml": REPEAT}, env={"SINK": sink.url}),
                              consumer_name="replica-2")
    incident = await open_incident(services, "p")
    await services.runner.start(incident, "p", None)
    await services.runner.drain()
    assert sink.paths == ["/status", "/once"]
    clock.advance(14 * 60)
    assert await services.runner.run_repeats() == 0
    clock.advance(60)
    # two replicas tick at the same moment: one runs the repeat
    assert await services.runner.run_repeats() + await other.runner.run_repeats() == 1
    await services.runner.drain()
    await other.runner.drain()
    assert sink.paths == ["/status", "/once", "/status"]
    clock.advance(15 * 60)
    await services.runner.run_repeats()
    await services.runner.drain()
    assert sink.paths.count("/status") == 3
    await services.incidents.resolve(incident.id, "user:alice")
    await services.runner.drain()
    clock.advance(60 * 60)
    assert await services.runner.run_repeats() == 0
    assert sink.paths.count("/status") == 3
    texts = [e.text for e in await services.incidents.store.timeline(incident.id)]
    assert any("status update (repeat 2)" in e.actor for e in await services.incidents.store.timeline(incident.id))
    assert texts


async def test_api_runs_a_playbook_by_hand_and_shows_repeats(make_config: Any, make_app: Any, sink: Sink,
                                                             clock: Any) -> None:
    files = {"responder.yaml": "server: {api_tokens: {write: '${TOKEN}'}}\n", "playbooks/p.yaml": REPEAT}
    client, services = await make_app(make_config(files, env={"TOKEN": "write-token-abcdef", "SINK": sink.url}))
    auth = {"Authorization": "Bearer write-token-abcdef"}
    incident = await open_incident(services, "p")
    url = f"/api/v1/incidents/{incident.id}/run"
    assert (await client.post(url, json={"playbook": "p"})).status == 401
    missing = await client.post(url, headers=auth, json={})
    assert missing.status == 400 and (await missing.json())["field"] == "playbook"
    unknown = await client.post(url, headers=auth, json={"playbook": "nope"})
    assert unknown.status == 404 and "known: p" in (await unknown.json())["error"]
    bad = await client.post(url, headers=auth, json={"playbook": "p", "dry_run": "yes"})
    assert bad.status == 400 and (await bad.json())["field"] == "dry_run"

    rehearsal = await client.post(url, headers=auth, json={"playbook": "p", "dry_run": True, "actor": "alice"})
    assert rehearsal.status == 202 and (await rehearsal.json())["dry_run"] is True
    await services.runner.drain()
    assert sink.requests == []
    real = await client.post(url, headers=auth, json={"playbook": "p", "actor": "alice"})
    run_id = (await real.json())["run_id"]
    await services.runner.drain()
    assert sink.paths == ["/status", "/once"]
    clock.advance(15 * 60)
    await services.runner.run_repeats()
    await services.runner.drain()
    detail = await (await client.get(f"/api/v1/incidents/{incident.id}")).json()
    run = next(r for r in detail["runs"] if r["run_id"] == run_id)
    assert [s["step"] for s in run["steps"]] == ["status update", "status update (repeat 1)", "once"]
    assert run["actor"] == "user:alice"

    await services.incidents.resolve(incident.id, "user:alice")
    late = await client.post(url, headers=auth, json={"playbook": "p"})
    assert late.status == 409 and (await late.json())["field"] == "state"
    await services.runner.drain()
