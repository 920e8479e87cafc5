"""/incident rollback and restart against fake Railway: the plan first (live deployment -> target, the budget),
then Confirm by an authorized person runs it exactly once through the PlaybookRunner on a manual incident."""

from __future__ import annotations

import json
from typing import Any

from tests.chatops.conftest import BOB, DANA, ERIN, RAILWAY_TOKEN, SIGNING_SECRET, Chat
from tests.fakes.slack import TOKEN as SLACK_TOKEN


def confirm_id(message: dict[str, Any]) -> str:
    [actions] = [b for b in message["blocks"] if b.get("type") == "actions"]
    ids = {e["action_id"]: e["value"] for e in actions["elements"]}
    assert set(ids) == {"chatops_confirm", "chatops_cancel"} and ids["chatops_confirm"] == ids["chatops_cancel"]
    return str(ids["chatops_confirm"])


def text_of(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks") or [], ensure_ascii=False) + message["text"]


async def test_unauthorized_rollback_is_refused_and_audited(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    answer, _ = await chat.command("rollback api", user=BOB)
    assert answer["text"].startswith(":no_entry: you are not allowed to `rollback`")
    await chat.settle()
    assert chat.rollbacks() == [] and chat.railway.requests == []  # not even a plan was made
    [entry] = await chat.audit(user=BOB)
    assert entry["command"] == "/incident rollback api" and entry["outcome"] == "refused"
    assert entry["allowed"] is False and entry["actor"] == f"slack:{BOB}" and entry["user_name"] == "bob"


async def test_rollback_shows_the_plan_waits_for_confirm_and_runs_once(chat: Chat, make_config: Any,
                                                                      make_app: Any) -> None:
    await chat.start(make_config, make_app)
    v1, v2 = chat.deployments["v1"], chat.deployments["v2"]
    plan, _ = await chat.command("rollback api", user=DANA)
    await chat.settle()
    shown = text_of(plan)
    assert plan["response_type"] == "in_channel"
    assert f"live deployment `{v2[:8]}…` (success) → back to `{v1[:8]}…` (the previous successful one)" in shown
    assert "Budget: 0 of 1 rollback of `railway:api@production` used in the last 30m" in shown
    assert chat.railway.endpoint in shown and "roll back to that deployment" in shown
    assert RAILWAY_TOKEN not in shown and "Nothing has changed yet" in shown
    assert chat.rollbacks() == []  # only read-only queries so far
    assert await chat.services.incidents.store.list() == []

    ident = confirm_id(plan)
    # bob may not confirm; erin (SRE group) may; a double click and a late second person change nothing
    refused = await chat.click("chatops_confirm", ident, user=BOB)
    assert chat.slack.responses_to(refused)[0]["text"].startswith(":no_entry: you are not allowed to `rollback`")
    assert chat.slack.responses_to(refused)[0]["replace_original"] is False
    assert chat.rollbacks() == []
    first = await chat.click("chatops_confirm", ident, user=ERIN, settle=False)
    second = await chat.click("chatops_confirm", ident, user=ERIN, settle=False)
    await chat.settle()
    third = await chat.click("chatops_confirm", ident, user=DANA)

    assert chat.rollbacks() == [{"id": v1}]  # exactly once, to v1
    assert chat.railway.active("api").meta == chat.railway.deployments[v1].meta
    running, done = chat.slack.responses_to(first)
    assert running["replace_original"] is True and f"Confirmed by <@{ERIN}>" in text_of(running)
    assert "chatops_confirm" not in text_of(done)  # the buttons are gone
    assert done["text"].startswith(":white_check_mark: `chatops.rollback.api` completed")
    assert f"rolled back api (production) to deployment {v1[:8]}" in text_of(done)
    for late in (second, third):
        [notice] = chat.slack.responses_to(late)
        assert notice["text"] == f":information_source: Already confirmed by <@{ERIN}>; nothing more was done."

    [incident] = await chat.services.incidents.store.list()
    assert incident.title == "manual rollback of api by dana" and incident.rule_id == "chatops"
    assert incident.state.value == "resolved" and incident.resolved_by == "playbook step resolve"
    story = [(e.actor, e.text) for e in await chat.timeline(incident.id)]
    assert story[0] == ("rule:chatops", f"rollback of api asked in Slack by dana (slack:{DANA}), confirmed by erin "
                                        f"(slack:{ERIN})")
    assert any(actor == "step:rollback" and text.startswith("railway.rollback ok") for actor, text in story)
    runs = await chat.services.runs.for_incident(incident.id)
    assert len(runs) == 1 and (await chat.services.runs.get(runs[0]))["actor"] == f"slack:{ERIN}"
    outcomes = [(e["user_id"], e["outcome"]) for e in await chat.audit()]
    assert outcomes == [(DANA, "duplicate"), (ERIN, "duplicate"), (ERIN, "confirmed"), (BOB, "refused"),
                        (DANA, "ok")]
    story_text = json.dumps(story)
    for secret in (RAILWAY_TOKEN, SLACK_TOKEN, SIGNING_SECRET):
        assert secret not in story_text


async def test_rollback_to_a_chosen_deployment(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    v0 = chat.railway.add_deployment("api", status="REMOVED")  # newest in the fake's clock, but named explicitly
    plan, _ = await chat.command(f"rollback api {v0}")
    assert f"back to `{v0[:8]}…` (chosen)" in text_of(plan)
    await chat.click("chatops_confirm", confirm_id(plan))
    assert chat.rollbacks() == [{"id": v0}]


async def test_cancel_changes_nothing(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    plan, _ = await chat.command("rollback api", user=ERIN)
    ident = confirm_id(plan)
    url = await chat.click("chatops_cancel", ident, user=ERIN)  # whoever asked may cancel
    [cancelled] = chat.slack.responses_to(url)
    assert cancelled["replace_original"] is True and f"Cancelled by <@{ERIN}>" in text_of(cancelled)
    later = await chat.click("chatops_confirm", ident, user=DANA)
    assert chat.slack.responses_to(later)[0]["text"].endswith(f"Already cancelled by <@{ERIN}>; nothing more was "
                                                              "done.")
    assert chat.rollbacks() == [] and await chat.services.incidents.store.list() == []


async def test_an_expired_plan_cannot_be_confirmed(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    plan, _ = await chat.command("rollback api")
    chat.clock.advance(16 * 60)  # chatops.slack.confirm_ttl is 15m
    url = await chat.click("chatops_confirm", confirm_id(plan))
    assert "Expired" in text_of(chat.slack.responses_to(url)[0])
    assert chat.rollbacks() == []
    url = await chat.click("chatops_confirm", "cf_unknown")
    assert chat.slack.responses_to(url)[0]["text"].startswith("This request has expired or is unknown")


async def test_the_budget_is_checked_before_anything_is_offered(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    plan, _ = await chat.command("rollback api")
    await chat.click("chatops_confirm", confirm_id(plan))
    assert len(chat.rollbacks()) == 1
    answer, _ = await chat.command("rollback api")
    assert answer["text"] == (":warning: Rollback of `api` is not offered: remediation budget exhausted: 1 of at "
                              "most 1 rollback of railway:api@production per 30m already used; nothing was changed.")
    assert "blocks" not in answer
    chat.clock.advance(31 * 60)
    plan, _ = await chat.command("rollback api")
    assert "Budget: 0 of 1 rollback" in text_of(plan)


async def test_the_budget_is_counted_when_the_run_acts(chat: Chat, make_config: Any, make_app: Any) -> None:
    """Two plans shown inside the budget: the second Confirm is refused by the runner (the budget is taken when
    the step runs) and the manual incident is frozen."""
    await chat.start(make_config, make_app)
    first, _ = await chat.command("rollback api")
    second, _ = await chat.command("rollback api")
    await chat.click("chatops_confirm", confirm_id(first))
    url = await chat.click("chatops_confirm", confirm_id(second))
    assert len(chat.rollbacks()) == 1
    done = chat.slack.responses_to(url)[-1]
    assert done["text"].startswith(":x: `chatops.rollback.api` failed")
    assert "remediation budget exhausted" in text_of(done)


async def test_restart_and_unknown_services(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    answer, _ = await chat.command("restart web")
    assert answer["text"] == (":warning: No restart is configured for `web` (configured: `api`; see "
                              "chatops.slack.services in responder.yaml).")
    answer, _ = await chat.command("restart api worker-1")
    assert answer["text"].startswith(":warning: restart of api takes no extra argument")
    plan, _ = await chat.command("restart api")
    assert f"restart of deployment `{chat.deployments['v2'][:8]}…`" in text_of(plan)
    await chat.click("chatops_confirm", confirm_id(plan))
    assert [name for name, _ in chat.railway.mutations] == ["deploymentRestart"]


async def test_roll_back_button_on_the_incident_message(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    incident = await chat.incident()
    refused = await chat.click("incident_rollback", incident.id, user=BOB)
    assert chat.slack.responses_to(refused)[0]["text"].startswith(":no_entry:")
    url = await chat.click("incident_rollback", incident.id, user=ERIN)
    [plan] = chat.slack.responses_to(url)
    assert plan["replace_original"] is False and f"for incident #{incident.id}" in text_of(plan)
    await chat.click("chatops_confirm", confirm_id(plan), user=DANA)
    assert chat.rollbacks() == [{"id": chat.deployments["v1"]}]
    # the change ran on the incident itself (no manual incident), and did not resolve it
    [only] = await chat.services.incidents.store.list()
    assert only.id == incident.id and only.state.value != "resolved"
    story = [(e.actor, e.text) for e in await chat.timeline(incident.id)]
    assert (f"slack:{ERIN}", "asked for rollback of api; waiting for Confirm") in story
    assert (f"slack:{DANA}", "confirmed rollback of api") in story
    assert any(text.startswith("refused: rollback #") for _, text in story)


async def test_a_failed_rollback_keeps_the_manual_incident_open(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    plan, _ = await chat.command("rollback api")
    chat.railway.fail_graphql("Not Authorized", code=None, times=5)
    url = await chat.click("chatops_confirm", confirm_id(plan))
    done = chat.slack.responses_to(url)[-1]
    assert done["text"].startswith(":x: `chatops.rollback.api` failed") and ":x: `rollback` failed" in text_of(done)
    [incident] = await chat.services.incidents.store.list()
    assert incident.state.value != "resolved"


async def test_nothing_to_roll_back_to_is_said_up_front(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    chat.railway.deployments[chat.deployments["v1"]].can_rollback = False
    answer, _ = await chat.command("rollback api")
    assert answer["text"] == (":warning: Rollback of `api` is not offered: api (production) has no previous successful "
                              "deployment to roll back to; name one: rollback &lt;service&gt; &lt;deployment id&gt;.")
    chat.railway.fail_graphql("Internal error", times=1)
    plan, _ = await chat.command("rollback api")  # a lookup that fails is shown; the run will decide
    assert "Could not look up the deployments" in text_of(plan)
