"""Built-in actions: log, wait, incident.note, incident.resolve, status.set (the built-in status page), verify."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from responder.actions.base import ActionProvider, ActionResult, PlannedCall, StepContext
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
        "verify": VerifyParams,
    }

    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        if isinstance(params, VerifyParams):
            return [params.planned()]
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
        if isinstance(params, VerifyParams):
            return await run_verify(self.deps, params)
        raise PermanentActionError(f"unknown built-in action {verb!r}")
