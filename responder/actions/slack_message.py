"""The incident message in Slack: a pure rendering of an Incident as Block Kit (plus the fallback text).

    text, blocks = render_incident(incident, incident_url="https://responder.example.com/incidents/inc_1")

One header (severity or "Resolved"), the facts (severity, state, service, value, source, rule), the
summary, links to the incident and to the source, timestamps, and while the incident is open the buttons
Acknowledge / Resolve / Roll back (action ids `incident_ack`, `incident_resolve`, `incident_rollback`,
value = the incident id; Acknowledge disappears once acknowledged). A resolved incident has no buttons.

Everything that comes from an alert (title, summary, service, actors) is escaped, so an alert can never
mention @channel or forge a link, and every text is cut to Slack's limits (header 150 characters,
section text 3000, field 2000, button 75; at most 50 blocks, which this never approaches).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from responder.events import Severity
from responder.incidents.model import Incident, IncidentState, TimelineEntry

__all__ = [
    "ACTION_ACK",
    "ACTION_RESOLVE",
    "ACTION_ROLLBACK",
    "Blocks",
    "escape",
    "render_incident",
    "render_reply",
    "truncate",
]

Blocks = list[dict[str, Any]]

ACTION_ACK = "incident_ack"
ACTION_RESOLVE = "incident_resolve"
ACTION_ROLLBACK = "incident_rollback"

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
BUTTON_TEXT_MAX = 75
TEXT_MAX = 3000  # fallback / notification text and thread replies (Slack truncates at 40,000)
BLOCK_ID_MAX = 255

SEVERITY_EMOJI = {
    Severity.CRITICAL: ":red_circle:",
    Severity.ERROR: ":large_orange_circle:",
    Severity.WARNING: ":large_yellow_circle:",
    Severity.INFO: ":large_blue_circle:",
}
STATE_LABEL = {
    IncidentState.TRIGGERED: ":rotating_light: Triggered",
    IncidentState.ACKNOWLEDGED: ":eyes: Acknowledged",
    IncidentState.MITIGATING: ":hammer_and_wrench: Mitigating",
    IncidentState.RESOLVED: ":white_check_mark: Resolved",
}
_SLACK_USER = re.compile(r"^slack:([UW][A-Z0-9]{2,})$")


def escape(text: str) -> str:
    """Slack's three control characters, so text from an alert is shown, never interpreted (<!channel>)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _url(url: str | None) -> str | None:
    """A URL fit for `<url|label>`: http(s) only, without the characters that would end the link."""
    if not url or not url.startswith(("http://", "https://")) or len(url) > 2000:
        return None
    return url.replace("<", "%3C").replace(">", "%3E").replace("|", "%7C").replace(" ", "%20")


def _link(url: str | None, label: str) -> str | None:
    safe = _url(url)
    return f"<{safe}|{escape(label)}>" if safe else None


def actor_name(actor: str) -> str:
    """`slack:U0DANA001` -> a mention, `user:alice` -> alice, anything else as written (escaped)."""
    match = _SLACK_USER.match(actor)
    if match:
        return f"<@{match.group(1)}>"
    return escape(actor.removeprefix("user:"))


def _when(moment: datetime) -> str:
    """Slack date formatting: shown in each reader's own time zone, with a UTC fallback."""
    epoch = int(moment.timestamp())
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{fallback}>"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": True}


def _mrkdwn(text: str, limit: int = SECTION_MAX) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(text, limit)}


def _state_text(incident: Incident) -> str:
    text = STATE_LABEL[incident.state]
    if incident.state is IncidentState.RESOLVED:
        return text + (f" by {actor_name(incident.resolved_by)}" if incident.resolved_by else "")
    if incident.state is IncidentState.ACKNOWLEDGED and incident.acknowledged_by:
        return text + f" by {actor_name(incident.acknowledged_by)}"
    if incident.state is IncidentState.MITIGATING and incident.playbook:
        text += f": playbook `{escape(incident.playbook)}`"
    if incident.acknowledged_by:
        text += f"\nacknowledged by {actor_name(incident.acknowledged_by)}"
    return text


def _value(value: float | None) -> str:
    return f"{value:g}" if value is not None else "—"


def _fields(incident: Incident) -> list[dict[str, Any]]:
    facts = [
        ("Severity", f"{SEVERITY_EMOJI.get(incident.severity, '')} {incident.severity.value}".strip()),
        ("State", _state_text(incident)),
        ("Service", escape(incident.service) if incident.service else "—"),
        ("Value", _value(incident.value)),
    ]
    if incident.source:
        facts.append(("Source", escape(incident.source)))
    facts.append(("Rule", f"`{escape(incident.rule_id)}`"))
    return [_mrkdwn(f"*{name}*\n{text}", FIELD_MAX) for name, text in facts]  # at most 10 fields


def _timestamps(incident: Incident) -> str:
    parts = [f"Opened {_when(incident.created_at)}"]
    if incident.acknowledged_at:
        parts.append(f"acknowledged {_when(incident.acknowledged_at)}")
    if incident.resolved_at:
        parts.append(f"resolved {_when(incident.resolved_at)}")
    if incident.event_count > 1:
        parts.append(f"{incident.event_count} events")
    parts.append(f"`{escape(incident.id)}`")
    return " · ".join(parts)


def _buttons(incident: Incident) -> dict[str, Any]:
    def button(label: str, action_id: str, style: str | None = None,
               confirm: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "button", "action_id": action_id, "text": _plain(label, BUTTON_TEXT_MAX),
                               "value": incident.id}
        if style:
            out["style"] = style
        if confirm:
            out["confirm"] = confirm
        return out

    elements = []
    if incident.acknowledged_at is None:
        elements.append(button("Acknowledge", ACTION_ACK, "primary"))
    elements.append(button("Resolve", ACTION_RESOLVE))
    service = incident.service or "the service"
    elements.append(button("Roll back", ACTION_ROLLBACK, "danger", confirm={
        "title": _plain("Roll back?", 100),
        "text": _mrkdwn(f"Roll back *{escape(service)}* to its previous deployment?", 300),
        "confirm": _plain("Roll back", 30),
        "deny": _plain("Cancel", 30),
        "style": "danger",
    }))
    return {"type": "actions", "block_id": truncate(f"incident:{incident.id}", BLOCK_ID_MAX), "elements": elements}


def fallback_text(incident: Incident) -> str:
    """The notification / screen-reader text: one line."""
    where = f" ({incident.service})" if incident.service else ""
    if incident.state is IncidentState.RESOLVED:
        return escape(truncate(f"Resolved: {incident.title}{where}", TEXT_MAX))
    return escape(truncate(f"[{incident.severity.value.upper()}] {incident.title}{where} — {incident.state.value}",
                           TEXT_MAX))


def render_incident(incident: Incident, *, incident_url: str | None = None,
                    note: str | None = None) -> tuple[str, Blocks]:
    """(fallback text, blocks) for the incident message; `note` is an extra line from the posting step, shown
    while the incident is open."""
    resolved = incident.state is IncidentState.RESOLVED
    emoji = ":white_check_mark:" if resolved else SEVERITY_EMOJI.get(incident.severity, ":rotating_light:")
    header = f"{emoji} {'Resolved: ' if resolved else ''}{incident.title}"
    blocks: Blocks = [
        {"type": "header", "text": _plain(header, HEADER_MAX)},
        {"type": "section", "fields": _fields(incident)},
    ]
    if incident.summary:
        blocks.append({"type": "section", "text": _mrkdwn(escape(incident.summary))})
    if note and not resolved:  # a progress line from the posting step: stale once resolved
        blocks.append({"type": "section", "text": _mrkdwn(escape(note))})
    if incident.automation_frozen:
        reason = f": {escape(incident.frozen_reason)}" if incident.frozen_reason else ""
        blocks.append({"type": "section", "text": _mrkdwn(f":no_entry: *Automation frozen*{reason} — people decide "
                                                          "from here.")})
    links = [link for link in (_link(incident_url, "Open incident"),
                               _link(incident.url, f"Source ({incident.source})" if incident.source else "Source"))
             if link]
    if links:
        blocks.append({"type": "section", "text": _mrkdwn(" · ".join(links))})
    blocks.append({"type": "context", "elements": [_mrkdwn(_timestamps(incident))]})
    if not resolved:
        blocks.append(_buttons(incident))
    return fallback_text(incident), blocks


def render_reply(entry: TimelineEntry) -> str:
    """A timeline entry as a short thread reply: who, then what (escaped, cut to a readable length)."""
    return truncate(f"*{actor_name(entry.actor)}*: {escape(entry.text)}", TEXT_MAX)
