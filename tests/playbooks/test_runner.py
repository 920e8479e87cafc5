"""The playbook runner on a real Redis: order, retries with backoff, timeouts, `when`, on_failure, idempotency."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from responder.events import Severity
from responder.incidents.model import Incident
from tests.conftest import Sink

PLAYBOOK = """
playbooks:
  - id: remediate
    steps:
      - name: flaky
        action: http.request
        with: {url: "${SINK}/flaky"}
        retries: {max: 3, backoff: 1s}
      - name: skipped when false
        action: http.request
        when: "incident.severity == 'info'"
        with: {url: "${SINK}/never"}
      - name: uses previous output
        action: http.request
        with: {url: "${SINK}/after/{{ steps.flaky.output.status }}"}
      - name: broken
        action: http.request
        with: {url: "${SINK}/forbidden"}
        retries: 5
        on_failure:
          - {name: escalate, action: http.request, with: {url: "${SINK}/escalate"}}
      - name: never reached
        action: http.request
        with: {url: "${SINK}/unreachable"}
"""


async def open_incident(services: Any, playbook: str = "remediate") -> Incident:
    incident, _ = await services.incidents.open(key="k", rule_id="r", title="t", severity=Severity.CRITICAL,
                                                group={}, playbook=playbook, event=None, text="opened by test")
    return incident  # type: ignore[no-any-return]


async def test_steps_retry_branch_and_stop(make_config: Any, make_app: Any, sink: Sink, clock: Any) -> None:
    calls = {"flaky": 0}

    async def scripted(request: web.Request) -> web.Response:
        if request.path == "/flaky":
            calls["flaky"] += 1
            if calls["flaky"] < 3:
                return web.json_response({"busy": True}, status=503)
        if request.path == "/forbidden":
            return web.json_response({"error": "no"}, status=403)
        return web.json_response({"ok": True})

    sink.script = scripted
    _, services = await make_app(make_config({"playbooks/p.yaml": PLAYBOOK}, env={"SINK": sink.url}))
    incident = await open_incident(services)
    started = clock.now()
    run_id = await services.runner.start(incident, "remediate", None)
    await services.runner.drain()

    assert sink.paths == ["/flaky", "/flaky", "/flaky", "/after/200", "/forbidden", "/escalate"]
    waited = (clock.now() - started).total_seconds()
    assert 1.0 <= waited <= 3.0  # two backoffs: 0.5-1 s then 1-2 s (equal jitter)
    records = {s: await services.runs.step_record(run_id, s) for s in
               ("flaky", "skipped when false", "broken", "escalate", "never reached")}
    assert records["flaky"]["status"] == "ok" and records["flaky"]["attempts"] == 3
    assert records["skipped when false"]["status"] == "skipped"
    assert records["broken"] == {**records["broken"], "status": "failed", "attempts": 1}  # 403: not retried
    assert "HTTP 403" in records["broken"]["error"]
    assert records["escalate"]["status"] == "ok"
    assert records["never reached"] is None
    run = await services.runs.get(run_id)
    assert run["status"] == "failed"
    after = await services.incidents.get(incident.id)
    assert after.state.value == "triggered"  # back from mitigating
    texts = [e.text for e in await services.incidents.store.timeline(incident.id)]
    assert "playbook remediate failed at step broken" in texts


async def test_a_run_is_created_once_and_steps_never_repeat(make_config: Any, make_app: Any, sink: Sink) -> None:
    playbook = ('playbooks:\n  - id: once\n    steps:\n'
                '      - {name: hit, action: http.request, with: {url: "${SINK}/hit"}}\n')
    _, services = await make_app(make_config({"playbooks/p.yaml": playbook}, env={"SINK": sink.url}))
    incident = await open_incident(services, "once")
    run_id = await services.runner.start(incident, "once", None)
    assert await services.runner.start(incident, "once", None) is None  # same incident: no second run
    await services.runner.drain()
    await services.runs.redis.hset(services.keys.run(run_id), "status", "running")  # as if a replica died late
    await services.runner.execute(run_id)  # resumed elsewhere: the finished step is not called again
    assert sink.paths == ["/hit"]


async def test_interrupted_step_is_not_repeated(make_config: Any, make_app: Any, sink: Sink) -> None:
    playbook = ('playbooks:\n  - id: p\n    steps:\n'
                '      - {name: first, action: http.request, with: {url: "${SINK}/first"}}\n'
                '      - {name: second, action: http.request, with: {url: "${SINK}/second"}, '
                'continue_on_failure: true}\n'
                '      - {name: third, action: http.request, with: {url: "${SINK}/third"}}\n')
    _, services = await make_app(make_config({"playbooks/p.yaml": playbook}, env={"SINK": sink.url}))
    incident = await open_incident(services, "p")
    run_id = "manual-run"
    await services.runs.create(run_id, incident.id, {"run_id": run_id, "incident_id": incident.id,
                                                     "playbook": "p", "phase": "main"}, "dead-replica", 0)
    # the dead replica had started "second" and never wrote its result
    await services.runs.begin_step(run_id, "second", {"step": "second", "status": "running"})
    assert await services.runner.resume_expired() == [run_id]
    await services.runner.drain()
    assert sink.paths == ["/first", "/third"]
    assert (await services.runs.step_record(run_id, "second"))["status"] == "interrupted"


async def test_step_timeout(make_config: Any, make_app: Any, sink: Sink) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    sink.script = slow
    playbook = ('playbooks:\n  - id: p\n    steps:\n'
                '      - {name: slow, action: http.request, timeout: 200ms, with: {url: "${SINK}/slow"}}\n')
    _, services = await make_app(make_config({"playbooks/p.yaml": playbook}, env={"SINK": sink.url}))
    incident = await open_incident(services, "p")
    run_id = await services.runner.start(incident, "p", None)
    await services.runner.drain()
    record = await services.runs.step_record(run_id, "slow")
    assert record["status"] == "failed" and "timed out after 0.2s" in record["error"]


async def test_lease_renewal_and_step_start_are_one_script(make_config: Any, make_app: Any) -> None:
    _, services = await make_app(make_config({}))
    runs, run_id = services.runs, "r1"
    await runs.create(run_id, "1", {"run_id": run_id, "incident_id": "1", "playbook": "p", "phase": "main"},
                      "me", 1000)
    record = {"step": "a", "status": "running"}
    assert await runs.renew_and_begin_step(run_id, "a", record, "me", 5000) == (True, None)
    assert float(await runs.redis.zscore(services.keys.runs_due, run_id)) == 5000  # the lease moved on
    assert await runs.renew_and_begin_step(run_id, "a", {"step": "a", "status": "x"}, "me", 6000) == (True, record)
    # another replica holds the run: nothing renewed, no record written
    assert await runs.renew_and_begin_step(run_id, "b", record, "other", 9000) == (False, None)
    assert await runs.step_record(run_id, "b") is None
    assert float(await runs.redis.zscore(services.keys.runs_due, run_id)) == 6000
