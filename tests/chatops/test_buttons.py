"""The incident message's buttons: Acknowledge and Resolve act as "slack:<user>", SlackSync edits the message
in place; refusals and problems go back to the clicker only."""

from __future__ import annotations

import json
from typing import Any

from responder.incidents.model import Incident
from tests.chatops.conftest import BOB, ERIN, Chat

ANNOUNCE = """playbooks:
  - id: announce
    steps:
      - {name: post, action: slack.post, with: {text: "looking into it"}}
"""


async def posted_incident(chat: Chat) -> tuple[Incident, Any]:
    incident = await chat.incident()
    await chat.services.runner.start(incident, "announce", None, phase="manual")
    await chat.settle()
    [message] = chat.slack.top_level()
    return incident, message


async def test_acknowledge_and_resolve_buttons_edit_the_message(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app, playbooks=ANNOUNCE)
    incident, message = await posted_incident(chat)
    assert "incident_ack" in json.dumps(message.blocks)
    edits = message.edits

    url = await chat.click("incident_ack", incident.id, user=BOB)
    assert chat.slack.responses_to(url) == []  # nothing to say: the message itself changes
    current = await chat.services.incidents.get(incident.id)
    assert current.state.value == "acknowledged" and current.acknowledged_by == f"slack:{BOB}"
    assert message.edits > edits and "incident_ack" not in json.dumps(message.blocks)
    assert f"Acknowledged by <@{BOB}>" in json.dumps(message.blocks)

    refused = await chat.click("incident_resolve", incident.id, user=BOB)
    [notice] = chat.slack.responses_to(refused)
    assert notice["response_type"] == "ephemeral" and notice["replace_original"] is False
    assert notice["text"].startswith(":no_entry: you are not allowed to `resolve`")
    assert (await chat.services.incidents.get(incident.id)).state.value == "acknowledged"

    await chat.click("incident_resolve", incident.id, user=ERIN)
    current = await chat.services.incidents.get(incident.id)
    assert current.state.value == "resolved" and current.resolved_by == f"slack:{ERIN}"
    assert "Resolved" in json.dumps(message.blocks) and "incident_resolve" not in json.dumps(message.blocks)
    replies = [m.text for m in chat.slack.thread(message.channel, message.ts)]
    assert any(f"<@{BOB}>" in r and "refused: resolve" in r for r in replies)  # the refusal is on the timeline
    outcomes = [(e["user_id"], e["command"], e["outcome"]) for e in await chat.audit(incident=incident.id)]
    assert outcomes == [(ERIN, f"resolve #{incident.id} (button)", "ok"),
                        (BOB, f"resolve #{incident.id} (button)", "refused"),
                        (BOB, f"ack #{incident.id} (button)", "ok")]


async def test_button_problems_are_told_to_the_clicker(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app, playbooks=ANNOUNCE)
    url = await chat.click("incident_ack", "4242", user=BOB)
    assert chat.slack.responses_to(url)[0]["text"] == ":warning: There is no incident #4242."
    incident = await chat.incident(service=None)
    url = await chat.click("incident_rollback", incident.id, user=ERIN)
    assert chat.slack.responses_to(url)[0]["text"].startswith(f":warning: Incident #{incident.id} names no service")
    await chat.services.incidents.resolve(incident.id, "user:alice")
    url = await chat.click("incident_ack", incident.id, user=BOB)
    assert "cannot acknowledge an incident that is resolved" in chat.slack.responses_to(url)[0]["text"]
    url = await chat.click("somebody_elses_button", "x", user=BOB)
    assert chat.slack.responses_to(url) == []
    assert len(await chat.audit()) == 3


async def test_a_failing_handler_answers_and_is_audited(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    incident = await chat.incident()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    chat.services.chatops.incidents.acknowledge = broken
    url = await chat.click("incident_ack", incident.id, user=BOB)
    assert chat.slack.responses_to(url)[0]["text"].startswith(":warning: Something went wrong on responder's side")
    [entry] = await chat.audit()
    assert entry["outcome"] == "error" and entry["detail"] == "RuntimeError"
    answer, _ = await chat.command(f"ack {incident.id}", user=BOB)
    assert answer["text"].startswith(":warning: Something went wrong on responder's side")
