"""Block Kit for ChatOps answers: replies, incident lists and details, plans with Confirm / Cancel, approvals.

Everything that comes from outside (titles, services, notes, playbook text) is escaped; texts are cut to
Slack's limits. Button values carry only ids (an approval or confirmation id, an incident id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from responder.actions.slack_message import (
    BUTTON_TEXT_MAX,
    SECTION_MAX,
    SEVERITY_EMOJI,
    STATE_LABEL,
    TEXT_MAX,
    Blocks,
    actor_name,
    escape,
    truncate,
)
from responder.incidents.model import Incident, TimelineEntry

__all__ = [
    "ACTION_APPROVE",
    "ACTION_CANCEL",
    "ACTION_CONFIRM",
    "ACTION_DENY",
    "Reply",
    "approval_blocks",
    "confirmation_blocks",
    "incident_detail",
    "incident_line",
    "when",
]

ACTION_APPROVE = "approval_approve"
ACTION_DENY = "approval_deny"
ACTION_CONFIRM = "chatops_confirm"
ACTION_CANCEL = "chatops_cancel"


@dataclass
class Reply:
    """One answer to a person: the immediate HTTP answer, or a message sent to a response_url."""

    text: str
    blocks: Blocks | None = None
    #: ephemeral: only the person sees it; in_channel: everyone in the channel
    response_type: str = "ephemeral"
    #: for answers to a button: replace the message the button was on
    replace_original: bool | None = None
    #: a later answer (e.g. the outcome of a playbook run started now), sent to the response_url when ready
    follow_up: Any = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"response_type": self.response_type, "text": truncate(self.text, TEXT_MAX)}
        if self.blocks:
            out["blocks"] = self.blocks
        if self.replace_original is not None:
            out["replace_original"] = self.replace_original
        return out


def when(moment: datetime) -> str:
    """Slack date formatting (each reader's time zone) with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_MAX)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, SECTION_MAX)}]}


def _button(label: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "button", "action_id": action_id, "value": value,
                           "text": {"type": "plain_text", "text": truncate(label, BUTTON_TEXT_MAX), "emoji": True}}
    if style:
        out["style"] = style
    return out


def incident_line(incident: Incident) -> str:
    emoji = SEVERITY_EMOJI.get(incident.severity, "")
    service = f" · {escape(incident.service)}" if incident.service else ""
    return (f"{emoji} *#{escape(incident.id)}* {escape(truncate(incident.title, 200))}{service} · "
            f"{incident.state.value} · opened {when(incident.created_at)}")


def incident_detail(incident: Incident, timeline: list[TimelineEntry]) -> Blocks:
    facts = [f"*State:* {STATE_LABEL[incident.state]}", f"*Severity:* {incident.severity.value}",
             f"*Service:* {escape(incident.service or '—')}", f"*Rule:* `{escape(incident.rule_id)}`",
             f"*Opened:* {when(incident.created_at)}"]
    if incident.acknowledged_by:
        facts.append(f"*Acknowledged by:* {actor_name(incident.acknowledged_by)}")
    if incident.resolved_by:
        facts.append(f"*Resolved by:* {actor_name(incident.resolved_by)}")
    if incident.automation_frozen:
        facts.append(f":no_entry: *Automation frozen:* {escape(incident.frozen_reason or '')}")
    title = f"*#{escape(incident.id)} {escape(truncate(incident.title, 200))}*"
    blocks: Blocks = [_section(title + "\n" + "\n".join(facts))]
    if incident.summary:
        blocks.append(_section(escape(incident.summary)))
    recent = [e for e in timeline if e.kind != "event"][-8:]
    if recent:
        lines = [f"{when(e.at)} *{actor_name(e.actor)}*: {escape(truncate(e.text, 300))}" for e in recent]
        blocks.append(_context("\n".join(lines)))
    return blocks


def confirmation_blocks(confirmation_id: str, headline: str, plan: list[str], notes: list[str],
                        expires: datetime) -> Blocks:
    """The plan of a rollback / restart with Confirm and Cancel."""
    steps = "\n".join(f"• {line}" for line in plan) or "• (the provider describes no requests)"
    blocks: Blocks = [_section(headline), _section(f"*Plan*\n{steps}")]
    if notes:
        blocks.append(_context("\n".join(notes)))
    blocks.append({"type": "actions", "block_id": truncate(f"confirm:{confirmation_id}", 255), "elements": [
        _button("Confirm", ACTION_CONFIRM, confirmation_id, "danger"),
        _button("Cancel", ACTION_CANCEL, confirmation_id)]})
    blocks.append(_context(f"Waiting for Confirm until {when(expires)}."))
    return blocks


def approval_blocks(doc: dict[str, Any], decision: dict[str, Any] | None = None) -> Blocks:
    """An approval step's question: with Approve / Deny while open, with the decision once taken."""
    question = doc.get("text") or "Approve the next steps of this playbook run?"
    head = f":raised_hand: *Approval needed* for incident *#{escape(doc['incident_id'])}* " \
           f"{escape(truncate(doc.get('title', ''), 150))}\n{escape(question)}"
    who = ", ".join(f"<!subteam^{a}>" if a.startswith("S") else f"<@{a}>" for a in doc.get("approvers") or []) \
        or "people allowed to approve"
    deadline = datetime.fromisoformat(doc["deadline"])
    blocks: Blocks = [_section(head)]
    if decision is None:
        blocks.append({"type": "actions", "block_id": truncate(f"approval:{doc['id']}", 255), "elements": [
            _button("Approve", ACTION_APPROVE, doc["id"], "primary"),
            _button("Deny", ACTION_DENY, doc["id"], "danger")]})
        blocks.append(_context(f"Step `{escape(doc.get('step', ''))}` of run `{escape(doc.get('run_id', ''))}`"
                               f" · may decide: {who} · until {when(deadline)} (then: {doc.get('on_timeout')})"))
        return blocks
    blocks.append(_context(decision_text(decision)))
    return blocks


def decision_text(decision: dict[str, Any]) -> str:
    outcome = decision.get("outcome", "")
    emoji = {"approve": ":white_check_mark:", "deny": ":x:"}.get(outcome, "")
    verb = {"approve": "Approved", "deny": "Denied"}.get(outcome, outcome)
    at = datetime.fromisoformat(decision["at"]) if decision.get("at") else None
    if decision.get("actor") == "timeout":
        return f":hourglass: No decision by the deadline: {verb.lower()} (on_timeout)" + (f" {when(at)}" if at else "")
    return f"{emoji} {verb} by {actor_name(decision.get('actor', ''))}" + (f" {when(at)}" if at else "")
