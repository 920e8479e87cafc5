"""Button clicks (block_actions), acted on after the HTTP 200 has gone back to Slack.

    incident_ack / incident_resolve   (the incident message; value = incident id) acknowledge / resolve as
                                      "slack:<user id>"; SlackSync then edits the incident message in place
    incident_rollback                 the plan for rolling back the incident's service, with Confirm / Cancel
    chatops_confirm / chatops_cancel  (the plan message; value = request id) see changes.py
    approval_approve / approval_deny  (an approval step's message; value = approval id) decide it once; the
                                      message is edited in place and the waiting run goes on

Refusals and problems go back to the clicker only (ephemeral, through the click's response_url).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from responder.actions.slack_message import ACTION_ACK, ACTION_RESOLVE, ACTION_ROLLBACK, actor_name, escape
from responder.chatops.config import AllowRule
from responder.chatops.messages import ACTION_APPROVE, ACTION_CANCEL, ACTION_CONFIRM, ACTION_DENY, Reply
from responder.chatops.model import Click, CommandFailed
from responder.incidents.service import IncidentNotFound
from responder.incidents.transitions import IllegalTransition
from responder.logs import get_logger
from responder.observability import report_exception

if TYPE_CHECKING:
    from responder.chatops.service import ChatOps

__all__ = ["ACTIONS", "handle_click"]

log = get_logger(__name__)

ACTIONS = (ACTION_ACK, ACTION_RESOLVE, ACTION_ROLLBACK, ACTION_CONFIRM, ACTION_CANCEL, ACTION_APPROVE, ACTION_DENY)


def _private(text: str) -> Reply:
    """An answer only the clicker sees, leaving the message as it is."""
    return Reply(text, replace_original=False)


async def handle_click(ops: ChatOps, click: Click) -> None:
    try:
        if click.action_id in (ACTION_ACK, ACTION_RESOLVE, ACTION_ROLLBACK):
            await _incident_button(ops, click)
        elif click.action_id in (ACTION_CONFIRM, ACTION_CANCEL):
            await ops.changes.decide(click, click.action_id == ACTION_CONFIRM)
        elif click.action_id in (ACTION_APPROVE, ACTION_DENY):
            await _approval(ops, click)
        else:
            log.info("button ignored: not one of responder's", action_id=click.action_id[:100])
    except Exception as exc:  # the click was already answered (200): tell the person, report it
        report_exception(exc, action_id=click.action_id)
        await ops.record(click.user, via="button", what=f"{click.action_id} {click.value}", allowed=None,
                         outcome="error", detail=exc.__class__.__name__, channel_id=click.channel_id)
        await ops.respond(click.response_url, _private(":warning: Something went wrong on responder's side; it "
                                                       "was logged."))


async def _incident_button(ops: ChatOps, click: Click) -> None:
    subcommand = {ACTION_ACK: "ack", ACTION_RESOLVE: "resolve", ACTION_ROLLBACK: "rollback"}[click.action_id]
    incident_id = click.value.strip()
    what = f"{subcommand} #{incident_id} (button)"
    user = click.user
    verdict = await ops.authz.check(subcommand, user.id, click.channel_id)
    if not verdict.allowed:
        reply = await ops.refused(user, via="button", what=what, reason=verdict.reason, channel_id=click.channel_id,
                                  incident_id=incident_id)
        await ops.respond(click.response_url, _private(reply.text))
        return
    try:
        incident = await ops.incidents.get(incident_id)
        if subcommand == "ack":
            await ops.incidents.acknowledge(incident.id, user.actor)
        elif subcommand == "resolve":
            await ops.incidents.resolve(incident.id, user.actor)
        else:
            if not incident.service:
                raise CommandFailed(f"Incident #{escape(incident.id)} names no service to roll back: use "
                                    f"`{ops.config.command} rollback <service>`.")
            reply = await ops.changes.propose("rollback", incident.service, None, user, click.channel_id, incident)
            reply.replace_original = False
            await ops.respond(click.response_url, reply)
    except (IncidentNotFound, IllegalTransition, CommandFailed) as exc:
        text = f"There is no incident #{escape(incident_id)}." if isinstance(exc, IncidentNotFound) else str(exc)
        await ops.record(user, via="button", what=what, allowed=True, outcome="failed", detail=text,
                         channel_id=click.channel_id, incident_id=incident_id)
        await ops.respond(click.response_url, _private(f":warning: {text}"))
        return
    await ops.record(user, via="button", what=what, allowed=True, outcome="ok", channel_id=click.channel_id,
                     incident_id=incident_id)


async def _approval(ops: ChatOps, click: Click) -> None:
    outcome = "approve" if click.action_id == ACTION_APPROVE else "deny"
    user = click.user
    doc = await ops.approvals.get(click.value)
    if doc is None:
        await ops.record(user, via="button", what=f"{outcome} {click.value}", allowed=None, outcome="expired",
                         channel_id=click.channel_id)
        await ops.respond(click.response_url, _private("This approval request has expired or is unknown."))
        return
    incident_id = doc.get("incident_id")
    what = f"{outcome} step {doc.get('step')} of run {doc.get('run_id')}"
    if doc.get("decision"):
        await _decided(ops, click, doc, what)
        return
    if ops.clock.now() >= datetime.fromisoformat(doc["deadline"]):
        await ops.record(user, via="button", what=what, allowed=None, outcome="expired", channel_id=click.channel_id,
                         incident_id=incident_id)
        await ops.respond(click.response_url, _private(f"Too late: the deadline passed, so it is "
                                                       f"{doc.get('on_timeout')} (on_timeout)."))
        return
    approvers = doc.get("approvers") or []
    if approvers:
        rule = AllowRule(users=[a for a in approvers if not a.startswith("S")],
                         groups=[a for a in approvers if a.startswith("S")])
        verdict = await ops.authz.check_rule(rule, user.id, None)
        reason = f"you may not decide this approval: it is for {verdict.reason}"
    else:
        verdict = await ops.authz.check("approve", user.id, click.channel_id)
        reason = verdict.reason
    if not verdict.allowed:
        reply = await ops.refused(user, via="button", what=what, reason=reason, channel_id=click.channel_id,
                                  incident_id=incident_id)
        await ops.respond(click.response_url, _private(reply.text))
        return
    status, decision = await ops.approvals.decide(doc, outcome, user.actor, user.name)
    if status != "ok":
        await _decided(ops, click, {**doc, "decision": decision}, what)
        return
    await ops.record(user, via="button", what=what, allowed=True, outcome="approved" if outcome == "approve"
                     else "denied", channel_id=click.channel_id, incident_id=incident_id)


async def _decided(ops: ChatOps, click: Click, doc: dict[str, Any], what: str) -> None:
    decision = doc.get("decision") or {}
    by = "the deadline" if decision.get("actor") == "timeout" else actor_name(decision.get("actor", ""))
    text = f"Already decided ({decision.get('outcome')}) by {by}."
    await ops.record(click.user, via="button", what=what, allowed=None, outcome="duplicate", detail=text,
                     channel_id=click.channel_id, incident_id=doc.get("incident_id"))
    with contextlib.suppress(Exception):
        await ops.respond(click.response_url, _private(f":information_source: {text}"))
