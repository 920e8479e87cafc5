"""The `approval` playbook step: Approve / Deny buttons posted through the Slack provider, a durable wait (the
step record is "waiting" with its deadline), the decision written once, and a daemon restart between
"asked" and "approved" that loses nothing."""

from __future__ import annotations

import json
from typing import Any

from responder.clock import FakeClock
from responder.incidents.model import Incident
from tests.chatops.conftest import BOB, DANA, ERIN, SRE, Chat

PLAYBOOK = """playbooks:
  - id: guarded
    steps:
      - {name: announce, action: slack.post, with: {text: "api is failing"}}
      - name: approve
        action: approval
        with: {text: "Roll back {{ incident.service }}?", approvers: [%(sre)s], timeout: 30m%(extra)s}
        on_failure:
          - {name: not approved, action: http.request, with: {url: "${SINK}/denied"}}
      - {name: after, action: http.request, with: {url: "${SINK}/after"}}
"""


def playbook(extra: str = "", approvers: str = SRE) -> str:
    return PLAYBOOK % {"sre": approvers, "extra": extra}


async def start_run(chat: Chat, services: Any = None) -> tuple[Incident, str]:
    services = services or chat.services
    incident = await chat.incident()
    run_id = await services.runner.start(incident, "guarded", None)
    assert run_id is not None
    await wait_for_status(chat, services, run_id, "waiting")
    await chat.until(lambda: _waiting_in(services))
    return incident, run_id


async def wait_for_status(chat: Chat, services: Any, run_id: str, status: str) -> None:
    async def there() -> bool:
        record = await services.runs.step_record(run_id, "approve")
        return record is not None and record["status"] == status

    await chat.until(there)


def approval_message(chat: Chat) -> Any:
    [message] = [m for m in chat.slack.messages.values() if "approval_approve" in json.dumps(m.blocks)
                 or (m.history and "approval_approve" in json.dumps(m.history[0]["blocks"]))]
    return message


def button_value(chat: Chat) -> str:
    [actions] = [b for b in approval_message(chat).blocks if b["type"] == "actions"]
    return str(actions["elements"][0]["value"])


async def test_approved_the_run_goes_on(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app, playbooks=playbook())
    incident, run_id = await start_run(chat)
    record = await chat.services.runs.step_record(run_id, "approve")
    assert record["deadline"] == "2026-01-01T00:30:00+00:00" and record["on_timeout"] == "deny"
    # asked in the incident message's thread, with the question and who may decide
    [top] = chat.slack.top_level()
    message = approval_message(chat)
    assert message.thread_ts == top.ts
    shown = json.dumps(message.blocks)
    assert "Roll back api?" in shown and f"<!subteam^{SRE}>" in shown
    assert chat.sink.paths == []

    refused = await chat.click("approval_approve", button_value(chat), user=BOB, settle=False)
    await chat.services.chatops.drain()
    assert chat.slack.responses_to(refused)[0]["text"].startswith(":no_entry: you may not decide this approval")
    assert (await chat.services.runs.step_record(run_id, "approve"))["status"] == "waiting"

    await chat.click("approval_approve", button_value(chat), user=ERIN)
    assert chat.sink.paths == ["/after"]
    record = await chat.services.runs.step_record(run_id, "approve")
    assert record["status"] == "ok" and record["decided_by"] == f"slack:{ERIN}"
    assert (await chat.services.runs.get(run_id))["status"] == "completed"
    # the message shows the decision instead of the buttons
    shown = json.dumps(message.blocks)
    assert "approval_approve" not in shown and f"Approved by <@{ERIN}>" in shown
    texts = [e.text for e in await chat.timeline(incident.id)]
    assert any(t.startswith(f"approval asked of {SRE}; waiting until 2026-01-01T00:30:00") for t in texts)
    assert f"approval ok: approved by erin (slack:{ERIN})" in texts
    entries = await chat.audit()
    assert [(e["user_id"], e["outcome"]) for e in entries] == [(ERIN, "approved"), (BOB, "refused")]


async def test_denied_takes_on_failure(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app, playbooks=playbook())
    _, run_id = await start_run(chat)
    value = button_value(chat)
    await chat.click("approval_deny", value, user=ERIN)
    again = await chat.click("approval_approve", value, user=ERIN)
    assert chat.slack.responses_to(again)[0]["text"] == f":information_source: Already decided (deny) by <@{ERIN}>."
    assert chat.sink.paths == ["/denied"]
    record = await chat.services.runs.step_record(run_id, "approve")
    assert record["status"] == "failed" and record["error"] == f"denied by erin (slack:{ERIN})"
    assert (await chat.services.runs.get(run_id))["status"] == "failed"


async def test_no_decision_by_the_deadline(chat: Chat, make_config: Any, make_app: Any, clock: FakeClock) -> None:
    await chat.start(make_config, make_app, playbooks=playbook())
    _, run_id = await start_run(chat)
    clock.advance(31 * 60)
    late = await chat.click("approval_approve", button_value(chat), user=ERIN, settle=False)
    await chat.services.chatops.drain()
    assert chat.slack.responses_to(late)[0]["text"].startswith("Too late: the deadline passed")
    chat.services.chatops.approvals.wake_all()
    await chat.settle()
    assert chat.sink.paths == ["/denied"]
    record = await chat.services.runs.step_record(run_id, "approve")
    assert record["status"] == "failed" and record["error"] == "denied by nobody (timed out)"
    assert "No decision by the deadline: denied (on_timeout)" in json.dumps(approval_message(chat).blocks)


async def test_on_timeout_approve(chat: Chat, make_config: Any, make_app: Any, clock: FakeClock) -> None:
    await chat.start(make_config, make_app, playbooks=playbook(", on_timeout: approve"))
    _, run_id = await start_run(chat)
    clock.advance(30 * 60)
    chat.services.chatops.approvals.wake_all()
    await chat.settle()
    assert chat.sink.paths == ["/after"]
    assert (await chat.services.runs.step_record(run_id, "approve"))["summary"] == "approved by nobody (timed out)"


async def test_without_approvers_the_approve_rule_decides(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app, playbooks=playbook().replace(f"approvers: [{SRE}], ", ""))
    await start_run(chat)
    url = await chat.click("approval_approve", button_value(chat), user=BOB, settle=False)
    await chat.services.chatops.drain()
    assert chat.slack.responses_to(url)[0]["text"].startswith(":no_entry: you are not allowed to `approve`")
    await chat.click("approval_approve", button_value(chat), user=DANA)  # destructive group: dana
    assert chat.sink.paths == ["/after"]


async def test_an_approval_survives_a_restart(chat: Chat, make_config: Any, make_app: Any,
                                              clock: FakeClock) -> None:
    """App A asks and is stopped while waiting; app B (same Redis) resumes the run, which keeps waiting;
    Approve on B completes it there, and nothing before the approval runs again."""
    client_a = await chat.start(make_config, make_app, playbooks=playbook())
    services_a = chat.services
    incident, run_id = await start_run(chat)
    value = button_value(chat)
    await client_a.close()  # the daemon stops: its waiting run hands its lease back
    assert not services_a.runner.tasks

    client_b = await chat.start(make_config, make_app, playbooks=playbook())
    services_b = chat.services
    assert services_b is not services_a
    assert (await services_b.runs.get(run_id))["status"] == "running"
    assert (await services_b.runs.step_record(run_id, "approve"))["status"] == "waiting"
    assert await services_b.runs.redis.zscore(services_b.keys.runs_due, run_id) == 0  # released, not left to lapse
    assert await services_b.runner.resume_expired() == [run_id]  # at once: no need to wait for the lease
    await chat.until(lambda: _waiting_in(services_b))
    assert (await services_b.runs.get(run_id))["owner"] == services_b.runner.owner
    assert (await services_b.runs.step_record(run_id, "approve"))["status"] == "waiting"

    await chat.click("approval_approve", value, user=ERIN)
    assert chat.sink.paths == ["/after"]
    assert (await services_b.runs.get(run_id))["status"] == "completed"
    assert len(chat.slack.top_level()) == 1  # announce did not post again
    assert approval_message(chat).edits == 1  # nor was it asked again (one question, decided once)
    steps = [e.actor for e in await chat.timeline(incident.id) if e.kind == "step"]
    assert steps.count("step:announce") == 1 and steps.count("step:after") == 1
    assert client_b is chat.client


async def _waiting_in(services: Any) -> bool:
    """The run waits, idle, for the decision (it has looked at the decision and the deadline once)."""
    return bool(services.chatops.approvals.parked)


async def test_a_crashed_replica_is_taken_over_when_its_lease_lapses(chat: Chat, make_config: Any, make_app: Any,
                                                                     clock: FakeClock) -> None:
    client_a = await chat.start(make_config, make_app, playbooks=playbook())
    services_a = chat.services
    _, run_id = await start_run(chat)
    value = button_value(chat)

    async def crashed(*args: Any) -> None:  # the process dies: nothing is handed back
        return None

    services_a.runs.release = crashed
    await client_a.close()
    await chat.start(make_config, make_app, playbooks=playbook())
    services_b = chat.services
    assert await services_b.runner.resume_expired() == []  # A's lease still holds
    clock.advance(31)  # engine.run_lease is 30s
    assert await services_b.runner.resume_expired() == [run_id]
    await chat.until(lambda: _waiting_in(services_b))
    await chat.click("approval_approve", value, user=ERIN)
    assert chat.sink.paths == ["/after"]
    assert (await services_b.runs.get(run_id))["status"] == "completed"


async def test_a_decision_taken_on_another_replica_is_seen_at_the_next_poll(chat: Chat, make_config: Any,
                                                                           make_app: Any) -> None:
    await chat.start(make_config, make_app, playbooks=playbook())
    services_a = chat.services
    services_a.chatops.approvals.poll_seconds = 0.01
    _, run_id = await start_run(chat)
    await chat.start(make_config, make_app, playbooks=playbook())  # replica B takes the click
    await chat.click("approval_approve", button_value(chat), user=ERIN)
    await services_a.runner.drain()
    assert chat.sink.paths == ["/after"]
    assert (await services_a.runs.get(run_id))["status"] == "completed"
    assert f"Approved by <@{ERIN}>" in json.dumps(approval_message(chat).blocks)


async def test_dry_run_shows_the_question_and_asks_nobody(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app, playbooks=playbook())
    incident = await chat.incident()
    await chat.services.runner.start(incident, "guarded", None, phase="manual", dry_run=True)
    await chat.settle()
    assert chat.slack.messages == {}
    [entry] = [e for e in await chat.timeline(incident.id) if e.actor == "step:approve"]
    assert entry.text.startswith("approval dry-run")
    assert "post Approve / Deny buttons, then wait up to 1800s" in json.dumps(entry.data["plan"])


async def test_without_slack_an_approval_step_fails(make_config: Any, make_app: Any, sink: Any) -> None:
    loaded = make_config({"playbooks/p.yaml": playbook()}, env={"SINK": sink.url})
    _, services = await make_app(loaded)
    incident, _ = await services.incidents.open(key="k", rule_id="r", title="t", severity="critical", group={},
                                                playbook=None, event=None, text="x")
    run_id = await services.runner.start(incident, "guarded", None)
    await services.runner.drain()
    record = await services.runs.step_record(run_id, "approve")
    assert record["status"] == "failed" and "providers.slack.bot_token is not set" in record["error"]
    assert sink.paths == ["/denied"]


async def test_approval_params_are_checked_at_load(make_config: Any) -> None:
    import pytest

    from responder.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        make_config({"playbooks/p.yaml": playbook(", on_timeout: maybe", approvers="alice")}, env={"SINK": "x"})
    text = str(caught.value)
    assert "playbooks/p.yaml:7" in text and "'alice' is not a Slack user id" in text and "on_timeout" in text
