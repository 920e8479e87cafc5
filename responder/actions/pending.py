"""Placeholder for a provider whose calls are not written yet (removed when every vendor module is real)."""

from __future__ import annotations

from pydantic import ConfigDict

from responder.actions.base import ActionProvider, ActionResult, StepContext
from responder.config.base import StrictModel
from responder.errors import PermanentActionError

__all__ = ["AnyParams", "PendingProvider"]


class AnyParams(StrictModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class PendingProvider(ActionProvider):
    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        raise PermanentActionError(f"provider {self.name} is configured but {self.name}.{verb} is not available yet")
