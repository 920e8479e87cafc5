"""Rollback and restart from Slack: the plan, the budget check, and the playbooks that run them.

Each `chatops.slack.services.<service>.<verb>` becomes a small playbook `chatops.<verb>.<service>`: the action
with its configured parameters, then (for the manual incident a command opens) `incident.resolve` when the
action succeeded. With an `argument` (e.g. deployment_id) a second playbook `chatops.<verb>.<service>.to`
takes that parameter from the command (through the run's event label `argument`). They run through the
PlaybookRunner like any playbook: durable, idempotent per step, and counted against the remediation budget.

The plan shown before Confirm is the provider's own `plan()` (the requests it would send), the budget as it
stands (read only: nothing is counted until the run), and, for Railway, which deployment is live now and
which one it would go back to (read-only GraphQL queries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from responder.actions import action_catalog
from responder.actions.base import ActionProvider, Remediation, StepContext
from responder.actions.railway import (
    ACTIVE,
    RAN_OK,
    RailwayProvider,
    RailwayRollbackParams,
    active,
    previous_successful,
    short,
)
from responder.actions.slack_message import escape
from responder.chatops.config import ServiceAction, SlackChatOpsConfig
from responder.clock import Clock, to_ms
from responder.config.base import StrictModel, format_duration
from responder.config.model import AutomationConfig
from responder.errors import ActionError
from responder.incidents.model import Incident
from responder.playbooks.model import Playbook
from responder.store.runs import RunStore

__all__ = ["PlannedChange", "Remediations", "playbook_id", "service_playbooks"]

VERBS = ("rollback", "restart")


def playbook_id(verb: str, service: str, with_argument: bool) -> str:
    return f"chatops.{verb}.{service}" + (".to" if with_argument else "")


def _steps(verb: str, action: ServiceAction, with_: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": verb, "action": action.action, "with": with_, "timeout": action.timeout,
         "retries": {"max": action.retries}},
        {"name": "resolve", "action": "incident.resolve", "with": {"note": f"manual {verb} done"},
         "when": f"steps.{verb}.status == 'ok' and incident.rule_id == 'chatops'"},
    ]


def service_playbooks(config: SlackChatOpsConfig) -> dict[str, Playbook]:
    out: dict[str, Playbook] = {}
    for service, actions in config.services.items():
        for verb in VERBS:
            action: ServiceAction | None = getattr(actions, verb)
            if action is None:
                continue
            pid = playbook_id(verb, service, False)
            out[pid] = Playbook.model_validate({"id": pid, "description": f"{verb} of {service} from Slack",
                                                "steps": _steps(verb, action, action.with_)})
            if action.argument:
                pid = playbook_id(verb, service, True)
                with_ = {**action.with_, action.argument: "{{ event.labels.argument }}"}
                out[pid] = Playbook.model_validate({"id": pid, "description": f"{verb} of {service} from Slack "
                                                    f"(with {action.argument})", "steps": _steps(verb, action, with_)})
    return out


@dataclass
class PlannedChange:
    """What Confirm would do, as shown to people before they decide."""

    verb: str
    service: str
    action: str
    argument: str | None
    params: dict[str, Any]
    #: one line per request the provider would send
    plan: list[str]
    #: facts around it: live deployment and target, budget
    notes: list[str]
    #: when the change is refused outright (no provider, over budget): why
    refusal: str | None = None

    @property
    def playbook(self) -> str:
        return playbook_id(self.verb, self.service, self.argument is not None)


class Remediations:
    def __init__(self, config: SlackChatOpsConfig, providers: dict[str, ActionProvider],
                 planners: dict[str, ActionProvider], automation: AutomationConfig, runs: RunStore, clock: Clock,
                 secrets: list[str]) -> None:
        self.config = config
        self.providers = providers
        self.planners = planners
        self.automation = automation
        self.runs = runs
        self.clock = clock
        self.secrets = secrets
        self.catalog = action_catalog()

    def action(self, verb: str, service: str) -> ServiceAction | None:
        actions = self.config.services.get(service)
        return getattr(actions, verb) if actions is not None else None

    def known(self, verb: str) -> list[str]:
        return sorted(s for s, actions in self.config.services.items() if getattr(actions, verb) is not None)

    async def plan(self, verb: str, service: str, argument: str | None, incident: Incident) -> PlannedChange:
        """The plan for `verb service [argument]`; `refusal` is set when it must not be offered."""
        action = self.action(verb, service)
        assert action is not None
        provider_cls, name, params_model = self.catalog[action.action]
        raw = dict(action.with_)
        if argument is not None:
            if action.argument is None:
                raise ValueError(f"{verb} of {service} takes no extra argument (set chatops.slack.services."
                                 f"{service}.{verb}.argument to allow one)")
            raw[action.argument] = argument
        try:
            params = params_model.model_validate(raw)
        except ValidationError as exc:
            raise ValueError(f"invalid {action.argument or 'parameters'}: {exc.errors()[0]['msg']}") from None
        change = PlannedChange(verb, service, action.action, argument, params.model_dump(mode="json", by_alias=True),
                               [], [])
        provider = self.providers.get(provider_cls.name)
        ctx = StepContext(incident=incident, run_id="(not started)", step=verb)
        planner = provider or self.planners.get(provider_cls.name)
        calls = planner.plan(name, params, ctx) if planner else []
        for call in calls:
            shown = call.redacted(self.secrets)
            note = f" — {escape(shown['note'])}" if shown.get("note") else ""
            change.plan.append(f"`{escape(shown['method'])} {escape(shown['url'])}`{note}")
        if provider is None:
            change.refusal = f"providers.{provider_cls.name} is not configured: {action.action} cannot run"
            return change
        if isinstance(provider, RailwayProvider):
            notes, change.refusal = await _railway_preview(provider, verb, params)
            change.notes += notes
            if change.refusal:
                return change
        remediation = provider.remediation(name, params)
        if remediation is not None:
            budget_note, refusal = await self._budget(remediation)
            change.notes.append(budget_note)
            change.refusal = refusal
        return change

    async def _budget(self, change: Remediation) -> tuple[str, str | None]:
        budget = self.automation.budgets.get(change.kind)
        if budget is None:
            return f"Budget: {change.kind} is not limited (automation.budgets).", None
        per_ms = int(budget.per.total_seconds() * 1000)
        used = await self.runs.remediation_used(change.kind, change.target, to_ms(self.clock.now()), per_ms)
        window = format_duration(budget.per)
        if used >= budget.max:
            return "", (f"remediation budget exhausted: {used} of at most {budget.max} {change.kind} of "
                        f"{change.target} per {window} already used; nothing was changed")
        return (f"Budget: {used} of {budget.max} {change.kind} of `{change.target}` used in the last {window}; "
                "this one would count.", None)


async def _railway_preview(provider: RailwayProvider, verb: str, params: StrictModel) -> tuple[list[str], str | None]:
    """Which deployment is live and which one a rollback would restore (read-only queries); a refusal when
    there is nothing to roll back to. A lookup that fails is shown, and refuses nothing: the run decides."""
    try:
        target = await provider._resolve(params)  # type: ignore[arg-type]
        deployments = await provider._deployments(target, tuple(dict.fromkeys(ACTIVE + RAN_OK)))
    except ActionError as exc:
        return [f"Could not look up the deployments: {escape(str(exc))}"], None
    current = active(deployments)
    live = f"`{short(current.id)}` ({current.status.lower()})" if current else "no active deployment"
    label = escape(target.label)
    if verb != "rollback":
        return [f"*{label}*: {verb} of deployment {live}"], None
    assert isinstance(params, RailwayRollbackParams)
    if params.deployment_id:
        goal = f"`{escape(short(params.deployment_id))}` (chosen)"
    else:
        chosen = previous_successful(deployments, current)
        if chosen is None:
            return [f"*{label}*: live deployment {live}"], (
                f"{target.label} has no previous successful deployment to roll back to; name one: "
                "rollback <service> <deployment id>")
        goal = f"`{short(chosen.id)}` (the previous successful one)"
    return [f"*{label}*: live deployment {live} → back to {goal}"], None
