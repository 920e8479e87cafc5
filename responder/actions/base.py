"""The action plug-in contract: a provider groups a vendor's actions, each with a params model.

Providers do the step once and classify failures (RetryableActionError / PermanentActionError);
only the runner retries. A provider whose credentials are missing is not built, and its steps
are recorded as skipped with the reason.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp

from responder.clock import Clock
from responder.config.base import StrictModel
from responder.errors import PermanentActionError, RetryableActionError

if TYPE_CHECKING:
    from responder.incidents.model import Incident
    from responder.incidents.service import IncidentService
    from responder.store.status import StatusStore

__all__ = ["ActionProvider", "ActionResult", "ProviderDeps", "StepContext", "classify_http"]


@dataclass(frozen=True)
class ActionResult:
    """What a step did: `summary` goes on the timeline, `output` is available to later steps."""

    summary: str
    output: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepContext:
    incident: Incident
    run_id: str
    step: str
    dry_run: bool = False


@dataclass(frozen=True)
class ProviderDeps:
    """What providers may use; created once by the app."""

    http: aiohttp.ClientSession
    clock: Clock
    incidents: IncidentService
    status: StatusStore


class ActionProvider(ABC):
    name: ClassVar[str]
    #: credentials model under `providers.<name>`; None when the provider needs none
    Config: ClassVar[type[StrictModel] | None] = None
    #: verb -> params model; the action's full name is `<name>.<verb>` (or just `<verb>` for builtin)
    actions: ClassVar[dict[str, type[StrictModel]]]

    def __init__(self, config: StrictModel | None, deps: ProviderDeps) -> None:
        self.config = config
        self.deps = deps

    @classmethod
    def action_names(cls) -> dict[str, type[StrictModel]]:
        return {(verb if cls.name == "builtin" else f"{cls.name}.{verb}"): p for verb, p in cls.actions.items()}

    @abstractmethod
    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        """Do the step once; raise RetryableActionError or PermanentActionError on failure."""


def classify_http(status: int, body: str, retry_after: str | None = None) -> None:
    """2xx passes; 429 and 5xx are retryable (honouring Retry-After); other statuses are permanent."""
    if 200 <= status < 300:
        return
    snippet = body[:200].replace("\n", " ")
    if status == 429 or status >= 500:
        delay = None
        if retry_after and retry_after.strip().isdigit():
            delay = float(retry_after)
        raise RetryableActionError(f"HTTP {status}: {snippet}", retry_after=delay)
    raise PermanentActionError(f"HTTP {status}: {snippet}")
