"""Changes: rollback / restart from Slack — show the plan, wait for Confirm, run it exactly once.

    propose()   the plan (provider's plan(), live and target deployment, the budget as it stands) posted
                in the channel with Confirm / Cancel; the request is kept in Redis for chatops.slack.confirm_ttl
    decide()    a click on Confirm or Cancel: the clicker must be allowed the subcommand (the requester may
                always cancel); the decision is written once (HSETNX), so a double click, or two people
                clicking together, start one run
    execute()   the change as a playbook run through the PlaybookRunner (durable, idempotent, budgeted): on
                the incident the Roll back button belongs to, or on a new manual incident "manual rollback of
                api by alice", which the run resolves when the action succeeded

The outcome replaces the plan message (response_url, replace_original).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from responder.actions.slack_message import actor_name, escape
from responder.chatops.messages import Reply, confirmation_blocks, when
from responder.chatops.model import Click, CommandFailed, SlackUser
from responder.events import Severity
from responder.incidents.model import Incident
from responder.incidents.service import IncidentNotFound

if TYPE_CHECKING:
    from responder.chatops.service import ChatOps

__all__ = ["Changes"]

EMOJI = {"rollback": ":rewind:", "restart": ":arrows_counterclockwise:"}
STEP_ICON = {"ok": ":white_check_mark:", "failed": ":x:", "skipped": ":fast_forward:", "interrupted": ":warning:",
             "dry-run": ":memo:", "waiting": ":hourglass:"}
#: how long to keep watching a run that continues on another replica
WATCH_LIMIT = 29 * 60


class Changes:
    def __init__(self, chatops: ChatOps) -> None:
        self.ops = chatops

    # -- the plan ----------------------------------------------------------------------------------
    async def propose(self, verb: str, service: str, argument: str | None, user: SlackUser, channel_id: str | None,
                      incident: Incident | None) -> Reply:
        ops = self.ops
        if ops.remediations.action(verb, service) is None:
            known = ", ".join(f"`{s}`" for s in ops.remediations.known(verb)) or "none"
            raise CommandFailed(f"No {verb} is configured for `{escape(service)}` (configured: {known}; see "
                                "chatops.slack.services in responder.yaml).")
        now = ops.clock.now()
        draft = incident or Incident(id="new", key="draft", rule_id="chatops", title=f"manual {verb} of {service}",
                                     severity=Severity.WARNING, service=service, created_at=now, updated_at=now)
        try:
            change = await ops.remediations.plan(verb, service, argument, draft)
        except ValueError as exc:
            raise CommandFailed(escape(str(exc))) from None
        if change.refusal:
            raise CommandFailed(f"{verb.capitalize()} of `{escape(service)}` is not offered: {escape(change.refusal)}.")
        ident = "cf_" + uuid.uuid4().hex[:20]
        expires = now + ops.config.confirm_ttl
        doc = {"id": ident, "kind": "change", "verb": verb, "service": service, "argument": argument,
               "action": change.action, "params": change.params, "playbook": change.playbook,
               "requested_by": user.actor, "requested_name": user.name, "channel_id": channel_id,
               "incident_id": incident.id if incident else None, "asked_at": now.isoformat(),
               "expires_at": expires.isoformat(), "plan": change.plan, "notes": change.notes}
        ttl = ops.config.confirm_ttl + timedelta(days=1)
        await ops.confirmations.create(ident, doc, int(ttl.total_seconds() * 1000))
        if incident is not None:
            await ops.incidents.note(incident.id, user.actor, f"asked for {verb} of {service}; waiting for Confirm",
                                     kind="chatops")
        return Reply(f"{verb} of {service}: Confirm or Cancel", confirmation_blocks(
            ident, self._headline(doc), change.plan, change.notes, expires), response_type="in_channel")

    @staticmethod
    def _headline(doc: dict[str, Any]) -> str:
        target = f" to `{escape(doc['argument'])}`" if doc.get("argument") else ""
        where = f" for incident #{escape(doc['incident_id'])}" if doc.get("incident_id") else ""
        return (f"{EMOJI.get(doc['verb'], '')} *{doc['verb'].capitalize()} `{escape(doc['service'])}`*{target}{where},"
                f" asked by <@{doc['requested_by'].removeprefix('slack:')}>. Nothing has changed yet: Confirm runs "
                f"`{escape(doc['action'])}`.")

    def _closed(self, doc: dict[str, Any], text: str, extra: list[dict[str, Any]] | None = None) -> Reply:
        """The plan message without its buttons, with what happened."""
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": self._headline(doc)}},
                  {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}, *(extra or [])]
        return Reply(text, blocks, response_type="in_channel", replace_original=True)

    # -- the click ---------------------------------------------------------------------------------
    async def decide(self, click: Click, confirm: bool) -> None:
        ops = self.ops
        user = click.user
        verb_word = "confirm" if confirm else "cancel"
        doc = await ops.confirmations.get(click.value)
        if doc is None or doc.get("kind") != "change":
            await ops.record(user, via="button", what=f"{verb_word} {click.value}", allowed=None, outcome="expired",
                             channel_id=click.channel_id)
            await ops.respond(click.response_url, Reply("This request has expired or is unknown: run the command "
                                                        "again.", replace_original=False))
            return
        what = f"{verb_word} {doc['verb']} {doc['service']}"
        incident_id = doc.get("incident_id")
        if doc.get("decision"):
            await self._already(click, doc, what)
            return
        if ops.clock.now() > datetime.fromisoformat(doc["expires_at"]):
            await ops.record(user, via="button", what=what, allowed=None, outcome="expired",
                             channel_id=click.channel_id, incident_id=incident_id)
            await ops.respond(click.response_url, self._closed(doc, f":hourglass: Expired {when(ops.clock.now())}: "
                                                                    "nothing was changed. Run the command again."))
            return
        if confirm or user.actor != doc["requested_by"]:  # whoever asked may always cancel
            verdict = await ops.authz.check(doc["verb"], user.id, click.channel_id)
            if not verdict.allowed:
                reply = await ops.refused(user, via="button", what=what, reason=verdict.reason,
                                          channel_id=click.channel_id, incident_id=incident_id)
                reply.replace_original = False
                await ops.respond(click.response_url, reply)
                return
        status, decision = await ops.confirmations.decide(doc["id"], {
            "outcome": verb_word, "actor": user.actor, "name": user.name, "at": ops.clock.now().isoformat()})
        if status != "ok":
            await self._already(click, {**doc, "decision": decision}, what)
            return
        await ops.record(user, via="button", what=what, allowed=True,
                         outcome="confirmed" if confirm else "cancelled", channel_id=click.channel_id,
                         incident_id=incident_id)
        if not confirm:
            if incident_id:
                await ops.incidents.note(incident_id, user.actor, f"cancelled {doc['verb']} of {doc['service']}",
                                         kind="chatops")
            await ops.respond(click.response_url, self._closed(doc, f":heavy_multiplication_x: Cancelled by "
                                                                    f"<@{user.id}>: nothing was changed."))
            return
        started = await self.execute(doc, user)
        if isinstance(started, Reply):
            await ops.respond(click.response_url, started)
            return
        run_id, incident_id = started
        await ops.respond(click.response_url, self._closed(doc, f":gear: Confirmed by <@{user.id}>: running "
                                                                f"`{escape(doc['action'])}` as incident "
                                                                f"#{escape(incident_id)}…"))

        async def report() -> None:
            result = await self.outcome(run_id, doc["playbook"], incident_id)
            await ops.respond(click.response_url, self._closed(doc, result.text, result.blocks))

        ops.spawn(report(), f"slack-outcome:{run_id}", watcher=True)

    async def _already(self, click: Click, doc: dict[str, Any], what: str) -> None:
        decision = doc.get("decision") or {}
        done = {"confirm": "confirmed", "cancel": "cancelled"}.get(decision.get("outcome", ""), "decided")
        text = f"Already {done} by {actor_name(decision.get('actor', ''))}; nothing more was done."
        await self.ops.record(click.user, via="button", what=what, allowed=None, outcome="duplicate", detail=text,
                              channel_id=click.channel_id, incident_id=doc.get("incident_id"))
        await self.ops.respond(click.response_url, Reply(f":information_source: {text}", replace_original=False))

    # -- the run -----------------------------------------------------------------------------------
    async def execute(self, doc: dict[str, Any], user: SlackUser) -> tuple[str, str] | Reply:
        """Start the confirmed change: (run id, incident id), or why it could not start."""
        ops = self.ops
        verb, service = doc["verb"], doc["service"]
        labels = {"argument": doc["argument"]} if doc.get("argument") else {}
        event = ops.event(f"{verb} {service}", service, doc["id"], user, labels)
        incident: Incident | None = None
        if doc.get("incident_id"):
            try:
                incident = await ops.incidents.get(doc["incident_id"])
            except IncidentNotFound:
                incident = None
        if incident is not None and incident.state.is_open:
            await ops.incidents.note(incident.id, user.actor, f"confirmed {verb} of {service}", kind="chatops")
        else:
            requester = doc.get("requested_name") or doc["requested_by"]
            incident, _ = await ops.incidents.open(
                key=f"chatops:{doc['id']}", rule_id="chatops", title=f"manual {verb} of {service} by {requester}",
                severity=Severity.WARNING, group={"service": service}, playbook=None, event=event,
                text=f"{verb} of {service} asked in Slack by {requester} ({doc['requested_by']}), confirmed by "
                     f"{user.label}")
        run_id = await ops.runner.start(incident, doc["playbook"], event, phase="manual", actor=user.actor)
        if run_id is None:
            return self._closed(doc, f":warning: `{escape(doc['playbook'])}` could not be started (the configuration "
                                     "changed?); nothing was changed.")
        await ops.confirmations.set_run(doc["id"], run_id)
        return run_id, incident.id

    async def outcome(self, run_id: str, playbook_id: str, incident_id: str) -> Reply:
        """Wait for the run to end; its steps as a message."""
        ops = self.ops
        try:
            await self._wait(run_id)
        except TimeoutError:
            return Reply(f":hourglass: Run `{escape(run_id)}` is still going; follow incident #{escape(incident_id)} "
                         "on the dashboard.", response_type="in_channel")
        run = await ops.runs.get(run_id) or {}
        playbook = ops.runner.playbooks.get(playbook_id)
        lines = []
        for step in playbook.all_steps() if playbook else []:
            record = await ops.runs.step_record(run_id, step.name)
            if record is None:
                continue
            detail = record.get("summary") or record.get("error") or record.get("reason") or ""
            lines.append(f"{STEP_ICON.get(record['status'], '•')} `{escape(step.name)}` {record['status']}"
                         + (f": {escape(str(detail))[:400]}" if detail else ""))
        status = run.get("status") or "unknown"
        icon = ":white_check_mark:" if status == "completed" else ":x:"
        head = f"{icon} `{escape(playbook_id)}` {status} (incident #{escape(incident_id)}, run `{escape(run_id)}`)"
        text = head + ("\n" + "\n".join(lines) if lines else "")
        return Reply(head, [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}],
                     response_type="in_channel")

    async def _wait(self, run_id: str) -> None:
        task = next((t for t in self.ops.runner.tasks if t.get_name() == f"run:{run_id}"), None)
        if task is not None:
            await asyncio.wait({task})
            if task.cancelled():  # shutting down: the run resumes elsewhere, nothing to report from here
                raise asyncio.CancelledError
            return
        async with asyncio.timeout(WATCH_LIMIT):  # carried on by another replica: watch its status
            while True:
                run = await self.ops.runs.get(run_id)
                if run is None or run.get("status") not in ("running", None):
                    return
                await asyncio.sleep(2)
