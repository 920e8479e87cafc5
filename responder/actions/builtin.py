"""Built-in actions: log, wait, incident.note, incident.resolve, status.set (the built-in status page), verify,
approval (run by the runner itself: see responder/actions/approval.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from responder.actions.approval import APPROVAL, ApprovalParams
from responder.actions.base import ActionProvider, ActionResult, PlannedCall, StepContext
from responder.actions.statuspage import StatuspageIncidentParams, StatuspageResolveParams
from responder.actions.verify import VerifyParams, run_verify
from responder.config.base import Duration, StrictModel
from responder.errors import PermanentActionError
from responder.logs import get_logger

__all__ = ["BuiltinProvider"]

log = get_logger(__name__)


class LogParams(StrictModel):
    message: str
    level: Literal["debug", "info", "warning", "error"] = "info"


class WaitParams(StrictModel):
    duration: Duration = Field(default=timedelta(seconds=10), description="how long to pause the playbook")


class NoteParams(StrictModel):
    text: str


class ResolveParams(StrictModel):
    note: str = ""


class StatusSetParams(StrictModel):
    component: str
    status: Literal["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"]
    message: str = ""


class BuiltinProvider(ActionProvider):
    name = "builtin"
    actions = {
        "log": LogParams,
        "wait": WaitParams,
        "incident.note": NoteParams,
        "incident.resolve": ResolveParams,
        "status.set": StatusSetParams,
        # the same verbs and parameters as Statuspage's, so a playbook can switch between the two
        "status.incident": StatuspageIncidentParams,
        "status.resolve": StatuspageResolveParams,
        "verify": VerifyParams,
        APPROVAL: ApprovalParams,
    }

    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        if isinstance(params, VerifyParams):
            return [params.planned()]
        if isinstance(params, ApprovalParams):
            who = ", ".join(params.approvers) or "chatops.slack.allow.approve"
            return [PlannedCall("POST", "slack chat.postMessage", {"text": params.text, "approvers": params.approvers,
                                                                   "channel": params.channel},
                                note=f"post Approve / Deny buttons, then wait up to "
                                     f"{params.timeout.total_seconds():g}s for {who} (on timeout: "
                                     f"{params.on_timeout})")]
        return super().plan(verb, params, ctx)

    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        incident = ctx.incident
        if isinstance(params, LogParams):
            getattr(log, params.level)(params.message, incident_id=incident.id, step=ctx.step)
            return ActionResult(f"logged: {params.message}")
        if isinstance(params, WaitParams):
            await self.deps.clock.sleep(params.duration.total_seconds())
            return ActionResult(f"waited {params.duration.total_seconds():g}s")
        if isinstance(params, NoteParams):
            await self.deps.incidents.note(incident.id, f"step:{ctx.step}", params.text, kind="step")
            return ActionResult("note added")
        if isinstance(params, ResolveParams):
            await self.deps.incidents.resolve(incident.id, f"playbook step {ctx.step}", params.note)
            return ActionResult("incident resolved")
        if isinstance(params, StatusSetParams):
            await self.deps.status.set(params.component, params.status, params.message, self.deps.clock.now(),
                                       incident.id)
            return ActionResult(f"status page: {params.component} is {params.status}",
                                {"component": params.component, "status": params.status})
        if isinstance(params, StatuspageIncidentParams):
            return await self._publish(params, ctx)
        if isinstance(params, StatuspageResolveParams):
            return await self._resolve_public(params, ctx)
        if isinstance(params, VerifyParams):
            return await run_verify(self.deps, params)
        if isinstance(params, ApprovalParams):  # the runner asks and waits itself (durably)
            raise PermanentActionError("approval steps are run by the playbook runner")
        raise PermanentActionError(f"unknown built-in action {verb!r}")

    async def _publish(self, params: StatuspageIncidentParams, ctx: StepContext) -> ActionResult:
        """status.incident: open or update this incident's public incident on the built-in page."""
        now = self.deps.clock.now()
        body = params.body or f"We are {params.status} an issue."
        existing = await self.deps.status.public_incident(ctx.incident.id)
        name = params.name or ("" if existing and existing.get("status") != "resolved" else ctx.incident.title)
        doc = await self.deps.status.publish(ctx.incident.id, status=params.status, body=body, at=now, name=name,
                                             components=dict(params.components))
        for component, status in params.components.items():
            await self.deps.status.set(component, status, body, now, ctx.incident.id)
        return ActionResult(f"status page incident {(doc or {}).get('name', name)!r}: {params.status}",
                            {"status": params.status, "components": dict(params.components)})

    async def _resolve_public(self, params: StatuspageResolveParams, ctx: StepContext) -> ActionResult:
        """status.resolve: resolve the public incident and put the components it touched back to operational."""
        now = self.deps.clock.now()
        current = await self.deps.status.public_incident(ctx.incident.id)
        touched = dict(current.get("components", {})) if current else {}
        await self.deps.status.publish(ctx.incident.id, status="resolved", body=params.body, at=now)
        restore = {c: "operational" for c in touched} if params.restore_components else {}
        for component, status in {**restore, **params.components}.items():
            await self.deps.status.set(component, status, params.body, now, ctx.incident.id)
        if current is None:
            return ActionResult("no public incident was open; components updated",
                                {"components": {**restore, **params.components}})
        return ActionResult(f"status page incident {current.get('name')!r} resolved",
                            {"components": {**restore, **params.components}})
