"""Playbook models: ordered, named steps with timeouts, retries, conditions and failure branches."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from responder.config.base import Duration, StrictModel, also_accepts

__all__ = ["Budget", "Playbook", "PlaybooksFile", "Retries", "Step"]


class Retries(StrictModel):
    """Exponential backoff with full jitter: delay = uniform(0, min(max_backoff, backoff * 2**attempt))."""

    max: int = Field(default=0, ge=0, le=20, description="extra attempts after the first")
    backoff: Duration = Field(default=timedelta(seconds=1))
    max_backoff: Duration = Field(default=timedelta(seconds=60))

    @model_validator(mode="before")
    @classmethod
    def _int(cls, raw: Any) -> Any:
        return {"max": raw} if isinstance(raw, int) and not isinstance(raw, bool) else raw

    @classmethod
    def __get_pydantic_json_schema__(cls, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return also_accepts(core, handler, {"type": "integer", "minimum": 0, "maximum": 20})


class Step(StrictModel):
    """One step: run `action` with templated `with` params."""

    name: str = Field(min_length=1, description="unique within the playbook; the step's idempotency key")
    action: str = Field(description="built-in action or <provider>.<verb>")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="parameters (Jinja2 templates)")
    timeout: Duration = Field(default=timedelta(seconds=30))
    retries: Retries = Field(default_factory=Retries)
    when: str | None = Field(default=None, description="Jinja2 expression; the step is skipped when false")
    on_failure: list[Step] = Field(default_factory=list, description="steps run when this one fails for good")
    continue_on_failure: bool = Field(default=False, description="go on with the next step after a failure")
    repeat_every: Duration | None = Field(
        default=None, description="run this step again every so often while the incident stays open "
                                  "(e.g. a status page update every 15m); at least 10s")

    @model_validator(mode="after")
    def _repeat_floor(self) -> Step:
        if self.repeat_every is not None and self.repeat_every.total_seconds() < 10:
            raise ValueError("repeat_every must be at least 10s")
        return self


class Budget(StrictModel):
    """The loop breaker: at most `max` runs of this playbook per `per` (per incident key)."""

    max: int = Field(ge=1)
    per: Duration


class Playbook(StrictModel):
    """A named list of steps run when a rule fires; `on_resolve` steps run when the incident resolves."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
    description: str = ""
    steps: list[Step] = Field(min_length=1)
    on_resolve: list[Step] = Field(default_factory=list)
    budget: Budget | None = None
    dry_run: bool = Field(default=False, description="always a rehearsal: record what would be sent, call nothing")

    @model_validator(mode="after")
    def _unique_names(self) -> Playbook:
        seen: set[str] = set()
        for step in self.all_steps():
            if step.name in seen:
                raise ValueError(f"step name {step.name!r} is used twice; names must be unique in a playbook")
            seen.add(step.name)
        return self

    def all_steps(self) -> list[Step]:
        out: list[Step] = []

        def walk(steps: list[Step]) -> None:
            for step in steps:
                out.append(step)
                walk(step.on_failure)

        walk(self.steps)
        walk(self.on_resolve)
        return out


class PlaybooksFile(StrictModel):
    """A file under playbooks/."""

    playbooks: list[Playbook] = Field(default_factory=list)
