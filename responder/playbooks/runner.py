"""PlaybookRunner: durable, idempotent execution of playbook steps.

A run is created once per (incident, playbook, phase). Each step writes its start record under an
idempotency key before the action is called, so a step never runs twice for the same incident: a
run resumed after a crash skips finished steps and treats a step found "running" as interrupted
(failed, never repeated). The window left open — a crash after the vendor call but before the
result is written — is closed by the vendor's own idempotency where one exists (Idempotency-Key
header, PagerDuty dedup_key).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from responder.actions import action_catalog
from responder.actions.base import ActionProvider, ActionResult, StepContext
from responder.clock import Clock, to_ms
from responder.errors import ActionError, PermanentActionError, RetryableActionError
from responder.events import Event
from responder.incidents.model import Incident
from responder.incidents.service import IncidentService
from responder.logs import bind, get_logger, unbind
from responder.metrics import Metrics
from responder.observability import report_exception
from responder.playbooks.model import Playbook, Step
from responder.playbooks.render import Renderer, TemplateError
from responder.store.runs import RunStore

__all__ = ["PlaybookRunner"]

log = get_logger(__name__)
FINAL = ("ok", "failed", "skipped", "interrupted")


class RunFailed(Exception):
    pass


class PlaybookRunner:
    def __init__(self, store: RunStore, incidents: IncidentService, providers: dict[str, ActionProvider],
                 playbooks: dict[str, Playbook], clock: Clock, metrics: Metrics, *, lease_seconds: float = 30,
                 owner: str | None = None) -> None:
        self.store = store
        self.incidents = incidents
        self.providers = providers
        self.playbooks = playbooks
        self.clock = clock
        self.metrics = metrics
        self.lease_ms = int(lease_seconds * 1000)
        self.owner = owner or uuid.uuid4().hex[:12]
        self.renderer = Renderer()
        self.catalog = action_catalog()
        self.tasks: set[asyncio.Task[None]] = set()
        incidents.on_resolved.append(self._on_resolved)

    # -- starting -------------------------------------------------------------------------------
    async def start(self, incident: Incident, playbook_id: str, event: Event | None, phase: str = "main") -> str | None:
        """Create the run (once) and execute it in the background; returns the run id if it was created."""
        playbook = self.playbooks.get(playbook_id)
        if playbook is None or (phase == "resolve" and not playbook.on_resolve):
            return None
        run_id = f"{incident.id}-{playbook_id}-{phase}"
        if phase == "main" and playbook.budget:
            budget = playbook.budget
            allowed = await self.store.take_budget(playbook_id, incident.key, run_id, to_ms(self.clock.now()),
                                                   int(budget.per.total_seconds() * 1000), budget.max)
            if not allowed:
                await self.incidents.note(incident.id, f"playbook:{playbook_id}",
                                          f"playbook {playbook_id} not run: budget of {budget.max} per "
                                          f"{budget.per} exhausted", kind="playbook")
                return None
        doc = {"run_id": run_id, "incident_id": incident.id, "playbook": playbook_id, "phase": phase,
               "created_at": self.clock.now().isoformat(),
               "event": event.model_dump(mode="json") if event else None}
        created = await self.store.create(run_id, incident.id, doc, self.owner, self._lease_until())
        if created:
            self._spawn(run_id)
            return run_id
        return None

    async def _on_resolved(self, incident: Incident, actor: str) -> None:
        if incident.playbook:
            await self.start(incident, incident.playbook, None, phase="resolve")

    def _spawn(self, run_id: str) -> None:
        task = asyncio.create_task(self.execute(run_id), name=f"run:{run_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def resume_expired(self) -> list[str]:
        """Claim runs whose owner's lease lapsed (a crashed replica) and continue them here."""
        ids = await self.store.claim_expired(self.owner, to_ms(self.clock.now()), self._lease_until())
        for run_id in ids:
            self._spawn(run_id)
        return ids

    async def drain(self) -> None:
        """Wait for the runs in flight (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def _lease_until(self) -> int:
        return to_ms(self.clock.now()) + self.lease_ms

    # -- executing ------------------------------------------------------------------------------
    async def execute(self, run_id: str) -> None:
        run = await self.store.get(run_id)
        if run is None or run.get("status") not in ("running", None):
            return
        bind(run_id=run_id, incident_id=run["incident_id"])
        try:
            await self._execute(run_id, run)
        except Exception as exc:  # never let a run task die silently
            report_exception(exc, incident_id=run["incident_id"], run_id=run_id)
            self.metrics.pipeline_errors.labels(stage="runner").inc()
            await self.store.finish(run_id, "error")
        finally:
            unbind("run_id", "incident_id")

    async def _execute(self, run_id: str, run: dict[str, Any]) -> None:
        playbook = self.playbooks.get(run["playbook"])
        incident = await self.incidents.get(run["incident_id"])
        if playbook is None:
            await self.incidents.note(incident.id, "runner", f"playbook {run['playbook']} no longer exists")
            await self.store.finish(run_id, "failed")
            return
        main = run["phase"] == "main"
        if main and incident.state.is_open:
            incident = await self.incidents.start_mitigation(incident.id, playbook.id)
        context = {"incident": incident.model_dump(mode="json"), "event": run.get("event") or {}, "steps": {},
                   "run": {"id": run_id, "playbook": playbook.id, "phase": run["phase"]}}
        received = run.get("event", {}) and run["event"].get("received_at")
        outcome = "completed"
        try:
            await self._run_steps(run_id, playbook.steps if main else playbook.on_resolve, incident, context,
                                  received)
        except RunFailed as exc:
            outcome = f"failed at step {exc}"
        await self.store.finish(run_id, "failed" if outcome != "completed" else "completed")
        if main:
            await self.incidents.end_mitigation(incident.id, playbook.id, outcome)
        else:
            await self.incidents.note(incident.id, f"playbook:{playbook.id}", f"resolve steps {outcome}",
                                      kind="playbook")

    async def _run_steps(self, run_id: str, steps: list[Step], incident: Incident, context: dict[str, Any],
                         received: str | None) -> None:
        for step in steps:
            await self.store.renew(run_id, self.owner, self._lease_until())
            record = await self._run_step(run_id, step, incident, context, received)
            context["steps"][step.name] = {"status": record["status"], "output": record.get("output", {})}
            if record["status"] in ("failed", "interrupted"):
                await self._run_steps(run_id, step.on_failure, incident, context, received)
                if not step.continue_on_failure:
                    raise RunFailed(step.name)

    async def _run_step(self, run_id: str, step: Step, incident: Incident, context: dict[str, Any],
                        received: str | None) -> dict[str, Any]:
        started = self.clock.now()
        record: dict[str, Any] = {"step": step.name, "action": step.action, "status": "running",
                                  "started_at": started.isoformat(), "owner": self.owner}
        existing = await self.store.begin_step(run_id, step.name, record)
        if existing is not None:
            if existing["status"] in FINAL:
                return existing
            # started by a replica that died mid-step: at most once means we do not call it again
            existing.update(status="interrupted", error="the replica running this step stopped; not repeated")
            await self._record(run_id, step, incident, existing)
            return existing
        if received and not context.get("_first_action_seen"):
            context["_first_action_seen"] = True
            latency = (started - datetime.fromisoformat(received)).total_seconds()
            self.metrics.first_action_latency.observe(max(latency, 0.0))
        record.update(await self._attempt(run_id, step, incident, context))
        finished = self.clock.now()
        record.update(finished_at=finished.isoformat(), duration_ms=int((finished - started).total_seconds() * 1000))
        await self._record(run_id, step, incident, record)
        return record

    async def _attempt(self, run_id: str, step: Step, incident: Incident, context: dict[str, Any]) -> dict[str, Any]:
        """Decide skip/run, then call the provider with timeout and retries; returns the result fields."""
        try:
            if step.when and not self.renderer.truthy(step.when, context):
                return {"status": "skipped", "reason": f"condition false: {step.when}"}
            provider_cls, verb, params_model = self.catalog[step.action]
            provider = self.providers.get(provider_cls.name)
            if provider is None:
                return {"status": "skipped", "reason": f"no credentials for {provider_cls.name} "
                                                       f"(providers.{provider_cls.name} is not configured)"}
            params = params_model.model_validate(self.renderer.render(step.with_, context))
        except (TemplateError, ValidationError, KeyError) as exc:
            return {"status": "failed", "error": f"invalid parameters: {exc}", "attempts": 0}
        ctx = StepContext(incident=incident, run_id=run_id, step=step.name)
        attempts = 0
        while True:
            attempts += 1
            try:
                async with asyncio.timeout(step.timeout.total_seconds()):
                    result: ActionResult = await provider.run(verb, params, ctx)
                return {"status": "ok", "summary": result.summary, "output": result.output, "attempts": attempts}
            except TimeoutError:
                error: ActionError = RetryableActionError(f"timed out after {step.timeout.total_seconds():g}s")
            except ActionError as exc:
                error = exc
            except Exception as exc:
                report_exception(exc, incident_id=incident.id, run_id=run_id, step=step.name)
                self.metrics.pipeline_errors.labels(stage="action").inc()
                error = PermanentActionError(f"unexpected error: {exc.__class__.__name__}")
            if not error.retryable or attempts > step.retries.max:
                return {"status": "failed", "error": str(error), "attempts": attempts}
            await self.clock.sleep(self._backoff(step, attempts, error.retry_after))

    @staticmethod
    def _backoff(step: Step, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        cap = min(step.retries.max_backoff.total_seconds(), step.retries.backoff.total_seconds() * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap)  # "equal jitter": never zero, never above the cap

    async def _record(self, run_id: str, step: Step, incident: Incident, record: dict[str, Any]) -> None:
        await self.store.finish_step(run_id, step.name, record)
        self.metrics.step_outcomes.labels(action=step.action, outcome=record["status"]).inc()
        detail = record.get("summary") or record.get("error") or record.get("reason") or ""
        await self.incidents.note(incident.id, f"step:{step.name}", f"{step.action} {record['status']}"
                                  + (f": {detail}" if detail else ""), kind="step")
        log.info("step finished", step=step.name, action=step.action, status=record["status"])
