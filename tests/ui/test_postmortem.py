"""GET /api/v1/incidents/{id}/postmortem.md: durations on the fake clock, timeline, actions, people, escaping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from responder.clock import FakeClock
from responder.events import Severity
from responder.incidents.model import Incident, IncidentState, TimelineEntry
from responder.incidents.postmortem import durations, format_span, postmortem_markdown
from tests.conftest import Sink
from tests.ui.conftest import READ, TOKENS, WRITE, login, open_incident

PLAYBOOK = """
playbooks:
  - id: mitigate
    steps:
      - name: tell the hook
        action: http.request
        with: {url: "${SINK}/hook", method: POST, json: {incident: "{{ incident.id }}"}}
      - name: settle
        action: wait
        with: {duration: 2m}
"""


async def test_postmortem_over_the_api(make_config: Any, make_app: Any, sink: Sink, clock: FakeClock) -> None:
    loaded = make_config({"responder.yaml": TOKENS, "playbooks/p.yaml": PLAYBOOK}, env={"SINK": sink.url})
    client, services = await make_app(loaded)
    write = {"Authorization": f"Bearer {WRITE}"}
    opened = clock.now()
    incident = await open_incident(services, "API error rate | above 5% <b>", playbook="mitigate",
                                   summary="errors *everywhere*")
    clock.advance(90)
    response = await client.post(f"/api/v1/incidents/{incident.id}/ack", json={"actor": "alice"}, headers=write)
    assert response.status == 200
    clock.advance(30)
    response = await client.post(f"/api/v1/incidents/{incident.id}/run", json={"playbook": "mitigate",
                                                                               "actor": "alice"}, headers=write)
    assert response.status == 202
    await services.runner.drain()  # the wait step moves the fake clock 2 minutes
    assert clock.now() - opened == timedelta(minutes=4)
    clock.advance(600)
    response = await client.post(f"/api/v1/incidents/{incident.id}/resolve", json={"actor": "bob", "note": "fixed"},
                                 headers=write)
    assert response.status == 200

    path = f"/api/v1/incidents/{incident.id}/postmortem.md"
    assert (await client.get(path)).status == 401
    assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status == 401
    response = await client.get(path, headers={"Authorization": f"Bearer {READ}"})
    assert response.status == 200 and response.content_type == "text/markdown" and response.charset == "utf-8"
    assert response.headers["Content-Disposition"] == 'inline; filename="incident-1-postmortem.md"'
    text = await response.text()
    lines = text.splitlines()
    assert lines[0] == r"# Postmortem: incident #1 — API error rate \| above 5% \<b\>"
    assert "- **Severity:** critical" in lines and "- **Service:** api" in lines
    assert r"- **Alert summary:** errors \*everywhere\*" in lines
    assert "- **Opened:** 2026-01-01 00:00:00 UTC" in lines
    assert "- **Acknowledged:** 2026-01-01 00:01:30 UTC by user:alice" in lines
    assert "- **Resolved:** 2026-01-01 00:14:00 UTC by user:bob" in lines
    assert "| Time to acknowledge | 1 min 30 s | at 2026-01-01 00:01:30 UTC |" in lines
    assert "| Time to mitigate | 4 min 00 s | playbook mitigate completed |" in lines
    assert "| Time to resolve | 14 min 00 s | at 2026-01-01 00:14:00 UTC |" in lines
    assert "- 2026-01-01 00:02:00 UTC → 2026-01-01 00:04:00 UTC (2 min 00 s): completed" in lines
    timeline = lines[lines.index("## Timeline") + 4: lines.index("## Actions taken") - 1]
    assert timeline[0] == "| 2026-01-01 00:00:00 | +0 s | rule:api-error-rate | opened by test |"
    assert "| 2026-01-01 00:01:30 | +1 min 30 s | user:alice | acknowledged |" in timeline
    assert "| 2026-01-01 00:02:00 | +2 min 00 s | playbook:mitigate | playbook mitigate started |" in timeline
    assert "| 2026-01-01 00:14:00 | +14 min 00 s | user:bob | resolved: fixed |" in timeline
    assert "### mitigate — manual run: completed, started by user:alice" in lines
    step_lines = [line for line in lines if line.startswith("- tell the hook") or line.startswith("- settle")]
    assert step_lines[0].startswith("- tell the hook (`http.request`): **ok** in 0 s — POST ")
    assert step_lines[1] == "- settle (`wait`): **ok** in 2 min 00 s — waited 120s"
    who = lines[lines.index("## Who did what") + 2:]
    assert "| user:alice | 1 | acknowledged |" in who
    assert "| user:bob | 1 | resolved: fixed |" in who
    assert any(row.startswith("| rule:api-error-rate | 1 |") for row in who)
    assert any(row.startswith("| step:settle | 1 | wait ok") for row in who)

    # the dashboard links it and serves it to a session
    await login(client, READ)
    page = await (await client.get(f"/ui/incidents/{incident.id}")).text()
    assert f'href="/ui/incidents/{incident.id}/postmortem.md"' in page
    response = await client.get(f"/ui/incidents/{incident.id}/postmortem.md")
    assert response.status == 200 and await response.text() == text
    response = await client.get("/api/v1/incidents/77/postmortem.md", headers={"Authorization": f"Bearer {READ}"})
    assert response.status == 404 and (await response.json())["field"] == "id"


async def test_open_incident_postmortem_says_what_is_missing(make_config: Any, make_app: Any,
                                                             clock: FakeClock) -> None:
    client, services = await make_app(make_config({}))  # no read token: reads are open
    incident = await open_incident(services)
    clock.advance(3725)
    text = await (await client.get(f"/api/v1/incidents/{incident.id}/postmortem.md")).text()
    assert "| Time to acknowledge | — | not acknowledged |" in text
    assert "| Time to mitigate | — | no remediation step succeeded and no playbook run completed |" in text
    assert "| Time to resolve | — | not resolved (still open: 1 h 02 min 05 s so far) |" in text
    assert "No playbook ran." in text


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _entry(minutes: float, actor: str, kind: str, text: str) -> TimelineEntry:
    return TimelineEntry(at=T0 + timedelta(minutes=minutes), actor=actor, kind=kind, text=text)


def _step(name: str, action: str, status: str, minutes: float, **extra: Any) -> dict[str, Any]:
    return {"step": name, "action": action, "status": status, "duration_ms": 1500,
            "finished_at": (T0 + timedelta(minutes=minutes)).isoformat(), **extra}


def test_time_to_mitigate_is_the_first_remediation_step_that_succeeded() -> None:
    incident = Incident(id="7", key="k", rule_id="r", title="t", severity=Severity.ERROR, created_at=T0,
                        updated_at=T0, state=IncidentState.RESOLVED, resolved_at=T0 + timedelta(minutes=30),
                        acknowledged_at=T0 + timedelta(minutes=5))
    timeline = [_entry(0, "rule:r", "rule", "opened"),
                _entry(1, "playbook:rollback-api", "playbook", "playbook rollback-api started"),
                _entry(12, "playbook:rollback-api", "playbook", "playbook rollback-api failed at step verify"),
                _entry(20, "playbook:other", "playbook", "playbook other started"),
                _entry(25, "playbook:other", "playbook", "playbook other completed")]
    runs = [
        {"playbook": "rollback-api", "phase": "main", "dry_run": True, "status": "completed",
         "steps": [_step("rollback", "railway.rollback", "dry-run", 0.5)]},  # a rehearsal mitigates nothing
        {"playbook": "rollback-api", "phase": "main", "dry_run": False, "status": "failed",
         "steps": [_step("announce", "slack.post", "ok", 1.5), _step("rollback", "railway.rollback", "ok", 3),
                   _step("verify", "verify", "failed", 12, error="still failing")]},
        {"playbook": "other", "phase": "manual", "dry_run": False, "status": "completed",
         "steps": [_step("restart", "fly.restart", "ok", 22)]},
    ]
    d = durations(incident, timeline, runs)
    assert d.acknowledge == timedelta(minutes=5) and d.resolve == timedelta(minutes=30)
    assert d.mitigate == timedelta(minutes=3)
    assert d.mitigate_basis == "step rollback (railway.rollback) of playbook rollback-api succeeded"
    assert d.mitigating_periods == [(T0 + timedelta(minutes=1), T0 + timedelta(minutes=12), "failed at step verify"),
                                    (T0 + timedelta(minutes=20), T0 + timedelta(minutes=25), "completed")]
    # without the successful rollback, the first completed mitigating run counts
    runs[1]["steps"][1]["status"] = "failed"
    runs[2]["steps"][0]["status"] = "failed"
    d = durations(incident, timeline, runs)
    assert d.mitigate == timedelta(minutes=25) and d.mitigate_basis == "playbook other completed"

    text = postmortem_markdown(incident, timeline, runs, T0 + timedelta(hours=1))
    assert "- verify (`verify`): **failed** in 1.5 s — still failing" in text
    assert "### rollback-api — main dry-run: completed" in text


def test_format_span() -> None:
    assert [format_span(timedelta(seconds=s)) for s in (0, 4.25, 59, 60, 3599, 3600, 90061)] == [
        "0 s", "4.2 s", "59 s", "1 min 00 s", "59 min 59 s", "1 h 00 min 00 s", "1 d 01 h 01 min"]
    assert format_span(None) == "—"
