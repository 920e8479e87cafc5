"""Approvals: the runner's ApprovalGate — post Approve / Deny, wait durably for the decision.

    ask(params, ctx)      writes the question to Redis once (id derived from run and step), posts it with
                          buttons (in the incident message's thread, or the step's / the default channel)
                          and returns the waiting step record's fields: approval_id, deadline, on_timeout.
    wait(record, renew)   polls the decision in Redis on the app's clock until it is there or the deadline
                          passed (then on_timeout decides, written the same once-only way), renewing the
                          run's lease between polls. A click in this process wakes the waiter at once;
                          one on another replica is seen at the next poll (`poll_seconds`).
    decide(...)           a click: the first decision wins; the message is updated in place (chat.update).

Decisions are written with HSETNX, so a double click, two people clicking together, or a click racing the
deadline give one decision, and the run acts on exactly that one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from responder.actions.approval import ApprovalParams
from responder.actions.base import StepContext
from responder.actions.slack import SlackProvider
from responder.chatops.messages import approval_blocks, decision_text
from responder.clock import Clock
from responder.errors import ActionError, PermanentActionError
from responder.incidents.service import IncidentService
from responder.logs import get_logger
from responder.store.approvals import ApprovalStore

__all__ = ["Approvals", "approval_id"]

log = get_logger(__name__)

#: a decided question is kept this long after its deadline (for the record, and late clicks)
KEEP_AFTER = timedelta(days=7)


def approval_id(run_id: str, step: str) -> str:
    """Stable per (run, step), so an ask retried after a crash finds the same question."""
    return "ap_" + hashlib.sha256(f"{run_id}|{step}".encode()).hexdigest()[:24]


def _still_wanted(task: asyncio.Task[Any] | None) -> None:
    """Raise CancelledError when the task was asked to stop: redis-py sometimes loses a cancellation that
    arrives during a command (seen on shutdown), and a waiting loop must not carry on after it."""
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Approvals:
    def __init__(self, store: ApprovalStore, slack: SlackProvider | None, incidents: IncidentService, clock: Clock,
                 *, poll_seconds: float = 2.0) -> None:
        self.store = store
        self.slack = slack
        self.incidents = incidents
        self.clock = clock
        #: how often a waiting run looks for a decision taken on another replica (real seconds)
        self.poll_seconds = poll_seconds
        self._wakeups: dict[str, asyncio.Event] = {}
        #: approvals whose run is idle between two looks at the decision (tests wait for this)
        self.parked: set[str] = set()

    # -- asking ------------------------------------------------------------------------------------
    async def ask(self, params: ApprovalParams, ctx: StepContext) -> dict[str, Any]:
        if self.slack is None:
            raise PermanentActionError("providers.slack.bot_token is not set: nobody can be asked")
        incident = ctx.incident
        ident = approval_id(ctx.run_id, ctx.step)
        now = self.clock.now()
        doc: dict[str, Any] = {
            "id": ident, "kind": "step", "run_id": ctx.run_id, "step": ctx.step, "incident_id": incident.id,
            "title": incident.title, "text": params.text, "approvers": params.approvers,
            "on_timeout": params.on_timeout, "asked_at": now.isoformat(),
            "deadline": (now + params.timeout).isoformat()}
        ttl = int((params.timeout + KEEP_AFTER).total_seconds() * 1000)
        if not await self.store.create(ident, doc, ttl):  # asked before (a retry): keep the first deadline
            doc = await self.store.get(ident) or doc
        message: dict[str, Any] | None = doc.get("message")
        if not message:
            channel, ts = await self._post(doc, params.channel, incident.id)
            await self.store.set_message(ident, channel, ts)
            message = {"channel": channel, "ts": ts}
        who = ", ".join(params.approvers) or "chatops.slack.allow.approve"
        await self.incidents.note(incident.id, f"step:{ctx.step}", f"approval asked of {who}; waiting until "
                                  f"{doc['deadline']} (on timeout: {params.on_timeout})", kind="step")
        return {"approval_id": ident, "deadline": doc["deadline"], "on_timeout": doc["on_timeout"],
                "channel": message["channel"], "ts": message["ts"]}

    async def _post(self, doc: dict[str, Any], channel: str | None, incident_id: str) -> tuple[str, str]:
        assert self.slack is not None
        thread_ts = None
        if not channel:
            stored = await self.slack.message(incident_id)
            if stored:
                channel, thread_ts = stored["channel"], stored["ts"]
            else:
                channel = self.slack.cfg.channel
        if not channel:
            raise PermanentActionError("no channel to ask in: set `channel` in the step, post the incident message "
                                       "first (slack.post), or set providers.slack.channel")
        blocks = approval_blocks(doc)
        data = await self.slack._send("chat.postMessage", self.slack.client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, text=f"Approval needed for incident #{doc['incident_id']}",
            blocks=blocks, unfurl_links=False, unfurl_media=False))
        return str(data.get("channel") or channel), str(data.get("ts") or "")

    # -- waiting -----------------------------------------------------------------------------------
    async def wait(self, record: dict[str, Any], renew: Callable[[], Awaitable[bool]]) -> dict[str, Any] | None:
        ident = str(record.get("approval_id") or "")
        doc = await self.store.get(ident) if ident else None
        if doc is None:
            return {"status": "failed", "error": "the approval request expired or was lost; not approved"}
        deadline = datetime.fromisoformat(doc["deadline"])
        wakeup = self._wakeups.setdefault(ident, asyncio.Event())
        task = asyncio.current_task()
        try:
            while True:
                _still_wanted(task)
                decision = await self.store.decision(ident)
                if decision is None and self.clock.now() >= deadline:
                    decision = await self._time_out(ident, doc)
                if decision is not None:
                    return self._result(decision, doc)
                if not await renew():
                    return None
                _still_wanted(task)
                self.parked.add(ident)
                try:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.poll_seconds):
                            await wakeup.wait()
                finally:
                    self.parked.discard(ident)
                wakeup.clear()
        finally:
            if self._wakeups.get(ident) is wakeup:
                del self._wakeups[ident]

    async def _time_out(self, ident: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        status, decision = await self.store.decide(ident, {"outcome": doc["on_timeout"], "actor": "timeout",
                                                           "at": self.clock.now().isoformat()})
        if status == "ok" and decision is not None:
            await self._update_message(doc, decision)
        return decision

    @staticmethod
    def _result(decision: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
        actor = decision.get("actor", "")
        who = "nobody (timed out)" if actor == "timeout" else \
            f"{decision.get('name') or actor} ({actor})"
        fields = {"decision": decision.get("outcome"), "decided_by": actor, "decided_at": decision.get("at")}
        if decision.get("outcome") == "approve":
            return {"status": "ok", "summary": f"approved by {who}", **fields}
        return {"status": "failed", "error": f"denied by {who}", **fields}

    # -- deciding (a button click) -----------------------------------------------------------------
    async def get(self, ident: str) -> dict[str, Any] | None:
        return await self.store.get(ident)

    async def decide(self, doc: dict[str, Any], outcome: str, actor: str,
                     name: str) -> tuple[str, dict[str, Any] | None]:
        """Record `outcome` (approve|deny) unless decided already; wakes a waiter in this process."""
        decision = {"outcome": outcome, "actor": actor, "name": name, "at": self.clock.now().isoformat()}
        status, stored = await self.store.decide(doc["id"], decision)
        if status == "ok" and stored is not None:
            wakeup = self._wakeups.get(doc["id"])
            if wakeup is not None:
                wakeup.set()
            await self._update_message(doc, stored)
        return status, stored

    def wake_all(self) -> None:
        """Make every waiter in this process look again now (tests; after moving a fake clock)."""
        for event in self._wakeups.values():
            event.set()

    async def _update_message(self, doc: dict[str, Any], decision: dict[str, Any]) -> None:
        message = doc.get("message")
        if self.slack is None or not message:
            return
        try:
            await self.slack._send("chat.update", self.slack.client.chat_update(
                channel=message["channel"], ts=message["ts"], text=decision_text(decision),
                blocks=approval_blocks(doc, decision)))
        except ActionError as exc:  # the decision stands; only the message is stale
            log.warning("approval message not updated", approval_id=doc["id"], error=str(exc))
