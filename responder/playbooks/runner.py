"""PlaybookRunner: durable, idempotent execution of playbook steps.

A run is created once per (incident, playbook, phase). Each step writes its start record under an
idempotency key before the action is called, so a step never runs twice for the same incident: a
run resumed after a crash skips finished steps and treats a step found "running" as interrupted
(failed, never repeated). The window left open — a crash after the vendor call but before the
result is written — is closed by the vendor's own idempotency where one exists (Idempotency-Key
header, PagerDuty dedup_key).

Guard rails around every step:
- dry-run (global `automation.dry_run`, a playbook's `dry_run`, or one run): the step is rendered and
  validated, the provider describes what it would send (`plan`), the timeline records it, and no
  vendor is called;
- the remediation budget: a step that changes something (rollback, restart, ...) counts against
  `automation.budgets[kind]` per target in Redis, shared by all replicas. Over budget, the step is
  refused, the incident's automation is frozen (later changes are refused too) and the step's
  `on_failure` branch runs (page a human);
- `repeat_every`: a step that succeeded runs again on schedule while the incident stays open.

Approval steps (`action: approval`) ask people through an ApprovalGate (responder.chatops.approvals) and
wait: the step record is "waiting" with its deadline while the decision is outstanding, so a run resumed
after a restart (or on another replica) keeps waiting instead of treating the step as interrupted. The
waiting run renews its lease; when its task is cancelled (shutdown) it hands the lease back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from responder.actions import action_catalog
from responder.actions.approval import ApprovalParams
from responder.actions.base import ActionProvider, ActionResult, PlannedCall, StepContext, call_once
from responder.clock import Clock, to_ms
from responder.config.base import StrictModel, format_duration
from responder.config.model import AutomationConfig
from responder.errors import ActionError, PermanentActionError
from responder.events import Event
from responder.incidents.model import Incident, IncidentState
from responder.incidents.service import IncidentService
from responder.logs import bind, get_logger, redact_value, unbind
from responder.metrics import Metrics
from responder.observability import report_exception
from responder.playbooks.model import Playbook, Step
from responder.playbooks.render import Renderer, TemplateError
from responder.store.redis import RedisError
from responder.store.runs import RunStore

__all__ = ["ApprovalGate", "PlaybookRunner"]

log = get_logger(__name__)
FINAL = ("ok", "failed", "skipped", "interrupted", "dry-run")


class RunFailed(Exception):
    pass


class _LeaseLost(Exception):
    """Another replica took the run over while this one waited: stop here, it carries on there."""


class _HandedBack(Exception):
    """Shutting down: the run's lease was released before this step (the exception's text); another replica
    carries on from there."""


class ApprovalGate(Protocol):
    """Asks for a decision and waits for it durably (implemented by responder.chatops.approvals)."""

    async def ask(self, params: ApprovalParams, ctx: StepContext) -> dict[str, Any]:
        """Post the question; returns the fields for the waiting step record (approval_id, deadline, ...).
        Raises ActionError when it cannot be asked."""

    async def wait(self, record: dict[str, Any], renew: Callable[[], Awaitable[bool]]) -> dict[str, Any] | None:
        """Wait for the decision on the waiting `record`, calling `renew` between polls; returns the step's
        result fields (status ok / failed), or None when `renew` reported the lease lost."""


class PlaybookRunner:
    def __init__(self, store: RunStore, incidents: IncidentService, providers: dict[str, ActionProvider],
                 playbooks: dict[str, Playbook], clock: Clock, metrics: Metrics, *, lease_seconds: float = 30,
                 owner: str | None = None, planners: dict[str, ActionProvider] | None = None,
                 automation: AutomationConfig | None = None, secrets: list[str] | None = None,
                 public_url: str | None = None) -> None:
        self.store = store
        self.incidents = incidents
        self.providers = providers
        #: providers able to describe a step without credentials (dry-run of an unconfigured vendor)
        self.planners = planners or {}
        self.playbooks = playbooks
        self.clock = clock
        self.metrics = metrics
        self.automation = automation or AutomationConfig()
        self.secrets = secrets or []
        self.public_url = public_url.rstrip("/") if public_url else None
        self.lease_ms = int(lease_seconds * 1000)
        self.owner = owner or uuid.uuid4().hex[:12]
        self.renderer = Renderer()
        self.catalog = action_catalog()
        self.tasks: set[asyncio.Task[None]] = set()
        #: set by shutdown(): runs start no further step and hand themselves back instead
        self.stopping = False
        self._waiting_approval: set[asyncio.Task[Any]] = set()  # run tasks waiting for a person's decision
        #: asks for approval steps (set by the services when ChatOps is wired); None: approval steps fail
        self.approvals: ApprovalGate | None = None
        incidents.on_resolved.append(self._on_resolved)

    # -- starting -------------------------------------------------------------------------------
    async def start(self, incident: Incident, playbook_id: str, event: Event | None, phase: str = "main", *,
                    dry_run: bool | None = None, actor: str | None = None) -> str | None:
        """Create the run (once) and execute it in the background; returns the run id if it was created.

        phase: "main" (a rule fired), "resolve" (the incident resolved) or "manual" (a person asked; every
        manual run is a new run). `dry_run` None means: the playbook's or the global setting.
        """
        playbook = self.playbooks.get(playbook_id)
        if playbook is None or (phase == "resolve" and not playbook.on_resolve):
            return None
        dry = dry_run if dry_run is not None else (playbook.dry_run or self.automation.dry_run)
        run_id = f"{incident.id}-{playbook_id}-{phase}"
        if phase == "manual":
            run_id = f"{run_id}-{'dry-' if dry else ''}{uuid.uuid4().hex[:8]}"
        if phase == "main" and playbook.budget and not dry:
            budget = playbook.budget
            allowed = await self.store.take_budget(playbook_id, incident.key, run_id, to_ms(self.clock.now()),
                                                   int(budget.per.total_seconds() * 1000), budget.max)
            if not allowed:
                await self.incidents.note(incident.id, f"playbook:{playbook_id}",
                                          f"playbook {playbook_id} not run: budget of {budget.max} per "
                                          f"{format_duration(budget.per)} exhausted", kind="playbook")
                return None
        doc = {"run_id": run_id, "incident_id": incident.id, "playbook": playbook_id, "phase": phase,
               "steps": "resolve" if phase == "resolve" else "main", "dry_run": dry, "actor": actor,
               "created_at": self.clock.now().isoformat(),
               "event": event.model_dump(mode="json") if event else None}
        created = await self.store.create(run_id, incident.id, doc, self.owner, self._lease_until())
        if created:  # the run as just written, and the incident as the caller has it: no reading back
            self._spawn(self.execute(run_id, {**doc, "status": "running", "owner": self.owner}, incident),
                        f"run:{run_id}")
            return run_id
        return None

    async def _on_resolved(self, incident: Incident, actor: str) -> None:
        await self._cancel_repeats(incident.id)
        if incident.playbook:
            await self.start(incident, incident.playbook, None, phase="resolve")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def resume_expired(self) -> list[str]:
        """Claim runs whose owner's lease lapsed (a crashed replica) and continue them here."""
        ids = await self.store.claim_expired(self.owner, to_ms(self.clock.now()), self._lease_until())
        for run_id in ids:
            self._spawn(self.execute(run_id), f"run:{run_id}")
        return ids

    async def shutdown(self, *, grace: float) -> None:
        """Graceful stop (SIGTERM): within `grace` seconds, every run here either finishes the step it is in and
        hands itself back before the next one, or, still inside a step at the deadline (or waiting for an
        approval), is cancelled and handed back. Handing back releases the lease, so another replica continues
        the run at once from its next step (a step cut off mid-call is not repeated: it shows as interrupted)."""
        self.stopping = True
        for task in list(self._waiting_approval):  # a person may take hours: do not hold the shutdown for that
            task.cancel()
        if self.tasks:
            _done, late = await asyncio.wait(list(self.tasks), timeout=max(grace, 0.0))
            for task in late:
                task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait for the runs in flight (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def _lease_until(self) -> int:
        return to_ms(self.clock.now()) + self.lease_ms

    # -- executing ------------------------------------------------------------------------------
    async def execute(self, run_id: str, run: dict[str, Any] | None = None, incident: Incident | None = None) -> None:
        """Execute (or resume) a run; `run` and `incident` spare reading them when the caller has just written them."""
        if run is None:
            run = await self.store.get(run_id)
        if run is None or run.get("status") not in ("running", None):
            return
        bind(run_id=run_id, incident_id=run["incident_id"])
        keeper = asyncio.create_task(self._keep_lease(run_id), name=f"lease:{run_id}")
        try:
            await self._execute(run_id, run, incident)
        except _LeaseLost:
            log.warning("run taken over by another replica (its lease lapsed here): stopping at this step")
        except _HandedBack as exc:
            log.info("shutting down: run handed back to the other replicas", next_step=str(exc))
        except asyncio.CancelledError:  # shutdown deadline: hand the run back so another replica resumes it at once
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release(run_id, self.owner))
            raise
        except Exception as exc:  # never let a run task die silently
            report_exception(exc, incident_id=run["incident_id"], run_id=run_id)
            self.metrics.pipeline_errors.labels(stage="runner").inc()
            await self.store.finish(run_id, "error")
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            unbind("run_id", "incident_id")

    async def _keep_lease(self, run_id: str) -> None:
        """Renew the run's lease every third of it while the run executes, a long step included (wall-clock
        time: a replica that dies stops renewing, and the others take the run over once the lease lapses)."""
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                if not await self.store.renew(run_id, self.owner, self._lease_until()):
                    return  # taken over: the run stops before its next step (_run_steps checks)
            except (RedisError, OSError) as exc:  # the lease may lapse meanwhile; keep trying
                log.warning("run lease not renewed", error=exc.__class__.__name__)

    async def _execute(self, run_id: str, run: dict[str, Any], known: Incident | None) -> None:
        playbook = self.playbooks.get(run["playbook"])
        incident = known if known is not None else await self.incidents.get(run["incident_id"])
        actor = f"playbook:{run['playbook']}"
        if playbook is None:
            await self.incidents.note(incident.id, "runner", f"playbook {run['playbook']} no longer exists")
            await self.store.finish(run_id, "failed")
            return
        main = run.get("steps", "main") == "main"
        dry = bool(run.get("dry_run"))
        mitigating = main and not dry and incident.state.is_open
        if mitigating and incident.state is not IncidentState.MITIGATING:  # (already, when a run is resumed)
            incident = await self.incidents.start_mitigation(incident.id, playbook.id, known=incident)
        if dry:
            await self.incidents.note(incident.id, actor, f"dry-run of playbook {playbook.id}: every step is "
                                      "rendered and recorded, no vendor is called", kind="playbook")
        context = self._context(run_id, run, incident, playbook)
        received = run.get("event", {}) and run["event"].get("received_at")
        outcome = "completed"
        try:
            await self._run_steps(run_id, playbook.steps if main else playbook.on_resolve, incident, context,
                                  received, dry)
        except RunFailed as exc:
            outcome = f"failed at step {exc}"
        await self.store.finish(run_id, "failed" if outcome != "completed" else "completed")
        if mitigating:  # `incident` as the run last wrote it: a change since makes the service read it
            await self.incidents.end_mitigation(incident.id, playbook.id, outcome, known=incident)
        else:
            what = "dry-run" if dry else ("steps" if main else "resolve steps")
            await self.incidents.note(incident.id, actor, f"{what} {outcome}", kind="playbook")

    def _context(self, run_id: str, run: dict[str, Any], incident: Incident, playbook: Playbook) -> dict[str, Any]:
        return {"incident": incident.model_dump(mode="json"), "event": run.get("event") or {}, "steps": {},
                "run": {"id": run_id, "playbook": playbook.id, "phase": run["phase"],
                        "dry_run": bool(run.get("dry_run"))}}

    async def _run_steps(self, run_id: str, steps: list[Step], incident: Incident, context: dict[str, Any],
                         received: str | None, dry: bool) -> None:
        for step in steps:
            if self.stopping:  # shutting down: the next replica to claim the run starts this step
                await self.store.release(run_id, self.owner)
                raise _HandedBack(step.name)
            # the lease is renewed with the step's start record (one script); _LeaseLost if another replica resumed
            # this run meanwhile: it carries on from here
            record = await self._run_step(run_id, step, incident, context, received, dry, renew=True)
            context["steps"][step.name] = {"status": record["status"], "output": record.get("output", {})}
            if dry and step.on_failure:  # a rehearsal shows the escalation path too
                await self._run_steps(run_id, step.on_failure, incident, context, received, dry)
            if record["status"] in ("failed", "interrupted"):
                await self._run_steps(run_id, step.on_failure, incident, context, received, dry)
                if not step.continue_on_failure:
                    raise RunFailed(step.name)
            elif record["status"] == "ok" and step.repeat_every is not None:
                await self.store.schedule_repeat(run_id, step.name,
                                                 to_ms(self.clock.now()) + to_ms_delta(step.repeat_every))

    async def _run_step(self, run_id: str, step: Step, incident: Incident, context: dict[str, Any],
                        received: str | None, dry: bool, *, key: str | None = None,
                        renew: bool = False) -> dict[str, Any]:
        """Run one step once; `key` names its idempotency record (a repeat's iteration has its own). `renew`: renew
        the run's lease in the same script first (_LeaseLost, and no record written, when another replica has it)."""
        key = key or step.name
        started = self.clock.now()
        record: dict[str, Any] = {"step": key, "action": step.action, "status": "running",
                                  "started_at": started.isoformat(), "owner": self.owner}
        if renew:
            renewed, existing = await self.store.renew_and_begin_step(run_id, key, record, self.owner,
                                                                      self._lease_until())
            if not renewed:
                raise _LeaseLost(run_id)
        else:
            existing = await self.store.begin_step(run_id, key, record)
        if existing is not None:
            if existing["status"] in FINAL:
                return existing
            if existing["status"] == "waiting":  # an approval asked before a restart: keep waiting for it
                existing.update(await self._wait_approval(run_id, existing))
                existing.update(finished_at=self.clock.now().isoformat())
                await self._record(run_id, step, incident, existing)
                return existing
            # started by a replica that died mid-step: at most once means we do not call it again
            existing.update(status="interrupted", error="the replica running this step stopped; not repeated")
            await self._record(run_id, step, incident, existing)
            return existing
        if received and not dry and not context.get("_first_action_seen"):
            context["_first_action_seen"] = True
            latency = (started - datetime.fromisoformat(received)).total_seconds()
            self.metrics.first_action_latency.observe(max(latency, 0.0))
        record.update(await self._attempt(run_id, step, incident, context, dry))
        if record["status"] == "waiting":
            await self.store.finish_step(run_id, key, record)  # durable before waiting: a restart keeps waiting
            record.update(await self._wait_approval(run_id, record))
        finished = self.clock.now()
        record.update(finished_at=finished.isoformat(), duration_ms=int((finished - started).total_seconds() * 1000))
        await self._record(run_id, step, incident, record)
        return record

    async def _attempt(self, run_id: str, step: Step, incident: Incident, context: dict[str, Any],
                       dry: bool) -> dict[str, Any]:
        """Decide skip/plan/refuse/run, then call the provider with timeout and retries; returns result fields."""
        try:
            if step.when and not self.renderer.truthy(step.when, context):
                return {"status": "skipped", "reason": f"condition false: {step.when}"}
            provider_cls, verb, params_model = self.catalog[step.action]
            params = params_model.model_validate(self.renderer.render(step.with_, context))
        except (TemplateError, ValidationError, KeyError) as exc:
            return {"status": "failed", "error": f"invalid parameters: {exc}", "attempts": 0}
        ctx = StepContext(incident=incident, run_id=run_id, step=step.name, dry_run=dry,
                          incident_url=f"{self.public_url}/incidents/{incident.id}" if self.public_url else None)
        provider = self.providers.get(provider_cls.name)
        if dry:
            return self._plan(provider, provider_cls, verb, params, ctx)
        if provider is None:
            return {"status": "skipped", "reason": f"no credentials for {provider_cls.name} "
                                                   f"(providers.{provider_cls.name} is not configured)"}
        if isinstance(params, ApprovalParams):
            return await self._ask_approval(params, ctx)
        refusal = await self._check_budget(provider, verb, params, incident, run_id, step)
        if refusal:
            return {"status": "failed", "error": refusal, "attempts": 0, "refused": True}
        limit = step.timeout.total_seconds()
        needs = getattr(params, "minimum_step_time", None)
        if callable(needs) and "timeout" not in step.model_fields_set:
            limit = max(limit, float(needs()))
        attempts = 0
        while True:
            attempts += 1
            try:
                result: ActionResult = await call_once(provider, verb, params, ctx, limit)
                return {"status": "ok", "summary": result.summary, "output": result.output, "attempts": attempts}
            except ActionError as exc:
                error: ActionError = exc
            except Exception as exc:
                report_exception(exc, incident_id=incident.id, run_id=run_id, step=step.name)
                self.metrics.pipeline_errors.labels(stage="action").inc()
                error = PermanentActionError(f"unexpected error: {exc.__class__.__name__}")
            if not error.retryable or attempts > step.retries.max:
                return {"status": "failed", "error": str(error), "attempts": attempts}
            await self.clock.sleep(self._backoff(step, attempts, error.retry_after))

    async def _ask_approval(self, params: ApprovalParams, ctx: StepContext) -> dict[str, Any]:
        if self.approvals is None:
            return {"status": "failed", "attempts": 0, "error": "approval steps need Slack: set providers.slack "
                                                                 "bot_token and signing_secret"}
        try:
            return {"status": "waiting", "attempts": 1, **await self.approvals.ask(params, ctx)}
        except ActionError as exc:
            return {"status": "failed", "attempts": 1, "error": f"could not ask for approval: {exc}"}

    async def _wait_approval(self, run_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """The decision on a waiting approval step: its final status and summary or error."""
        if self.approvals is None:
            return {"status": "failed", "error": "approval steps need Slack (providers.slack is not configured)"}
        task = asyncio.current_task()
        if task is not None:
            self._waiting_approval.add(task)
        try:
            result = await self.approvals.wait(record, lambda: self.store.renew(run_id, self.owner,
                                                                                self._lease_until()))
        except asyncio.CancelledError:  # shutdown: hand the run back so another replica keeps waiting at once
            with contextlib.suppress(Exception):
                await self.store.release(run_id, self.owner)
            raise
        finally:
            if task is not None:
                self._waiting_approval.discard(task)
        if result is None:
            raise _LeaseLost(run_id)
        return result

    def _plan(self, provider: ActionProvider | None, provider_cls: type[ActionProvider], verb: str,
              params: StrictModel, ctx: StepContext) -> dict[str, Any]:
        planner = provider or self.planners.get(provider_cls.name)
        calls = planner.plan(verb, params, ctx) if planner else [
            PlannedCall("CALL", f"{provider_cls.name}.{verb}", params.model_dump(mode="json", by_alias=True))]
        plan = [call.redacted(self.secrets) for call in calls]
        summary = "would send " + "; then ".join(f"{c['method']} {c['url']}" for c in plan)
        if provider is None and provider_cls.Config is not None:
            summary += f" (providers.{provider_cls.name} is not configured: a real run would skip this step)"
        # the rendered `with`, as validated: what `responder test` and `responder replay` report per step
        params_json = redact_value(params.model_dump(mode="json", by_alias=True, exclude_unset=True), self.secrets)
        return {"status": "dry-run", "summary": summary, "plan": plan, "params": params_json}

    async def _check_budget(self, provider: ActionProvider, verb: str, params: StrictModel, incident: Incident,
                            run_id: str, step: Step) -> str | None:
        """None when the step may run; otherwise why it is refused (the incident's automation is then frozen)."""
        change = provider.remediation(verb, params)
        if change is None:
            return None
        current = await self.incidents.get(incident.id)
        if current.automation_frozen:
            return f"automation is frozen for this incident ({current.frozen_reason}); {step.action} not attempted"
        budget = self.automation.budgets.get(change.kind)
        if budget is None:
            return None
        allowed = await self.store.take_remediation(change.kind, change.target, f"{run_id}:{step.name}",
                                                    to_ms(self.clock.now()), to_ms_delta(budget.per), budget.max)
        if allowed:
            return None
        reason = (f"remediation budget exhausted: at most {budget.max} {change.kind} of {change.target} per "
                  f"{format_duration(budget.per)}")
        await self.incidents.freeze_automation(incident.id, reason)
        self.metrics.step_outcomes.labels(action=step.action, outcome="refused").inc()
        log.warning("step refused by the remediation budget", step=step.name, kind=change.kind, target=change.target)
        return f"{reason}; automation frozen for this incident"

    @staticmethod
    def _backoff(step: Step, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        cap = min(step.retries.max_backoff.total_seconds(), step.retries.backoff.total_seconds() * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap)  # "equal jitter": never zero, never above the cap

    async def _record(self, run_id: str, step: Step, incident: Incident, record: dict[str, Any]) -> None:
        await self.store.finish_step(run_id, record["step"], record)
        self.metrics.step_outcomes.labels(action=step.action, outcome=record["status"]).inc()
        detail = record.get("summary") or record.get("error") or record.get("reason") or ""
        data = {"plan": record["plan"]} if "plan" in record else {}
        await self.incidents.note(incident.id, f"step:{record['step']}", f"{step.action} {record['status']}"
                                  + (f": {detail}" if detail else ""), kind="step", **data)
        # info for what someone should look at; a step that went as planned is on the timeline (and in the metrics)
        (log.debug if record["status"] in ("ok", "skipped", "dry-run") else log.info)(
            "step finished", step=record["step"], action=step.action, status=record["status"])

    # -- repeating steps ------------------------------------------------------------------------
    async def run_repeats(self) -> int:
        """Claim the repeating steps that are due and run each once more (called on every engine tick)."""
        claimed = await self.store.claim_repeats(to_ms(self.clock.now()), self._lease_until())
        for run_id, step_name, iteration in claimed:
            self._spawn(self._repeat(run_id, step_name, iteration), f"repeat:{run_id}:{step_name}")
        return len(claimed)

    async def _repeat(self, run_id: str, step_name: str, iteration: int) -> None:
        run = await self.store.get(run_id)
        playbook = self.playbooks.get(run["playbook"]) if run else None
        step = next((s for s in playbook.all_steps() if s.name == step_name), None) if playbook else None
        if run is None or playbook is None or step is None or step.repeat_every is None:
            await self.store.cancel_repeat(run_id, step_name)
            return
        incident = await self.incidents.get(run["incident_id"])
        if not incident.state.is_open:
            await self.store.cancel_repeat(run_id, step_name)
            return
        bind(run_id=run_id, incident_id=incident.id)
        try:
            context = self._context(run_id, run, incident, playbook)
            record = await self._run_step(run_id, step, incident, context, None, bool(run.get("dry_run")),
                                          key=f"{step.name} (repeat {iteration})")
            if record["status"] == "failed":
                log.warning("repeating step failed; it will be tried again on schedule", step=step.name)
        except Exception as exc:
            report_exception(exc, incident_id=incident.id, run_id=run_id, step=step_name)
        finally:
            unbind("run_id", "incident_id")
        # the next iteration, unless the incident was resolved meanwhile (the resolve hook cancelled it)
        if (await self.incidents.get(incident.id)).state.is_open:
            await self.store.schedule_repeat(run_id, step.name,
                                             to_ms(self.clock.now()) + to_ms_delta(step.repeat_every))

    async def _cancel_repeats(self, incident_id: str) -> None:
        for run_id in await self.store.for_incident(incident_id):
            run = await self.store.get(run_id)
            playbook = self.playbooks.get(run["playbook"]) if run else None
            for step in playbook.all_steps() if playbook else []:
                if step.repeat_every is not None:
                    await self.store.cancel_repeat(run_id, step.name)


def to_ms_delta(value: timedelta) -> int:
    return int(value.total_seconds() * 1000)
