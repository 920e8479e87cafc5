"""Evaluator: runs each event (and each timer tick) through the rules and acts on the decisions."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from responder.clock import Clock, to_ms
from responder.engine.rules import Rule
from responder.engine.silences import SilenceService
from responder.events import Event
from responder.incidents.model import Incident
from responder.incidents.service import IncidentService
from responder.logs import get_logger
from responder.metrics import Metrics
from responder.playbooks.render import Renderer, TemplateError
from responder.store.rulestate import Evaluation, RuleStateStore

__all__ = ["Decision", "Evaluator"]

log = get_logger(__name__)
Starter = Callable[[Incident, str, Event | None], Awaitable[object]]


@dataclass(frozen=True)
class Decision:
    """What one rule decided for one group: fire, update, resolve, pending, reset, ..."""

    rule_id: str
    key: str
    result: str
    state: str
    value: float | None
    incident_id: str | None = None


class RuleIndex:
    """Rules bucketed by their plain (source, name) equality, so an event is tested only against candidates."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.by_id: dict[str, Rule] = {}
        self._buckets: dict[tuple[str | None, str | None], list[tuple[Rule, Callable[[Event], bool]]]] = \
            defaultdict(list)
        for rule in rules:
            if rule.enabled:
                self.by_id[rule.id] = rule
                self._buckets[rule.match.equality_key()].append((rule, rule.match.compile()))

    def candidates(self, event: Event) -> list[Rule]:
        out = []
        for key in ((event.source, event.name), (event.source, None), (None, event.name), (None, None)):
            for rule, test in self._buckets.get(key, ()):
                if test(event):
                    out.append(rule)
        return out


def member_of(rule: Rule, group: dict[str, str]) -> str:
    """The incident key: rule id plus the group values, in group_by order."""
    return rule.id + "|" + ",".join(f"{k}={v}" for k, v in group.items())


class Evaluator:
    def __init__(self, rules: Iterable[Rule], state: RuleStateStore, incidents: IncidentService, clock: Clock,
                 metrics: Metrics, start_playbook: Starter | None = None,
                 silences: SilenceService | None = None) -> None:
        self.index = RuleIndex(rules)
        self.state = state
        self.incidents = incidents
        self.clock = clock
        self.metrics = metrics
        self.start_playbook = start_playbook
        self.silences = silences
        self.renderer = Renderer()
        #: called with each event before the rules see it (PagerDuty webhooks update their incident first)
        self.before_rules: list[Callable[[Event], Awaitable[None]]] = []

    async def handle(self, event: Event) -> list[Decision]:
        """Evaluate every rule matching `event`; open, update and resolve incidents accordingly."""
        for hook in self.before_rules:
            await hook(event)
        decisions = []
        for rule in self.index.candidates(event):
            group = rule.group_values(event)
            evaluation = await self._step(rule, group, event)
            decisions.append(await self._act(rule, group, evaluation, event))
        return decisions

    async def tick(self) -> list[Decision]:
        """Evaluate every rule group whose timer expired: `for` elapsed, resolve delay over, window edge."""
        decisions = []
        for member in await self.state.due(to_ms(self.clock.now())):
            rule = self.index.by_id.get(member.split("|", 1)[0])
            if rule is None:
                await self.state.forget(member)
                continue
            group = await self.state.group_of(member)
            evaluation = await self._step(rule, group, None)
            decisions.append(await self._act(rule, group, evaluation, None))
        if self.silences is not None:
            decisions += await self._silence_ended()
        return decisions

    async def _silence_ended(self) -> list[Decision]:
        """Groups whose firing a silence held back, now that it ended: still firing -> open the incident."""
        assert self.silences is not None
        decisions = []
        for held in await self.silences.due():
            rule = self.index.by_id.get(held.rule_id)
            if rule is None:
                await self.silences.forget(held.key)
                continue
            evaluation = await self._step(rule, held.group, None)
            if evaluation.state == "firing" and evaluation.result == "none":  # the condition still holds
                evaluation = dataclasses.replace(evaluation, result="fire", sample=held.sample, held=True)
            elif evaluation.state != "firing":
                await self.silences.forget(held.key)
            decisions.append(await self._act(rule, held.group, evaluation, None))
        return decisions

    async def _step(self, rule: Rule, group: dict[str, str], event: Event | None) -> Evaluation:
        member = member_of(rule, group)
        common = {
            "now_ms": to_ms(self.clock.now()),
            "for_ms": int(rule.for_.total_seconds() * 1000),
            "resolve_ms": int(rule.resolve.after.total_seconds() * 1000),
            "quiet_ms": int(rule.resolve.quiet.total_seconds() * 1000) if rule.resolve.quiet else 0,
            "group": json.dumps(group),
        }
        self.metrics.rule_evaluations.labels(rule=rule.id).inc()
        if rule.over is None:
            holds = event is not None and rule.when.event_holds(event)
            return await self.state.evaluate(
                member, mode="series", item=event.fingerprint if event else "", holds=holds,
                sample=event.model_dump_json() if event and holds else "", **common)  # type: ignore[arg-type]
        counted = event is not None and rule.over.counted.event_holds(event)
        comparison = rule.when.value
        assert comparison is not None  # enforced by the Rule model
        return await self.state.evaluate(
            member, mode="window", item=event.id if event else "", holds=counted,
            window_ms=int(rule.over.window.total_seconds() * 1000), kind=rule.over.kind, op=comparison.op,
            threshold=comparison.threshold, sample=event.model_dump_json() if event and counted else "",
            **common)  # type: ignore[arg-type]

    def _title(self, rule: Rule, group: dict[str, str], event: Event | None) -> str:
        suffix = " ".join(f"{k}={v}" for k, v in group.items() if v)
        if rule.title:
            try:
                context = {"event": event.model_dump() if event else {}, "group": group, "rule": rule.model_dump()}
                return str(self.renderer.render(rule.title, context))
            except TemplateError as exc:
                log.warning("rule title template failed", rule_id=rule.id, error=str(exc))
        return (rule.description or rule.id) + (f" ({suffix})" if suffix else "")

    async def _act(self, rule: Rule, group: dict[str, str], ev: Evaluation, event: Event | None) -> Decision:
        key = member_of(rule, group)
        result = ev.result
        # On "fire" the open incident is not looked up first: the open script finds it (one round trip less on the
        # way to a new incident); it is looked up only when a silence matches (a silence holds back a new incident,
        # never a firing that joins an open one).
        incident_id = await self.incidents.store.open_id(key) if result != "fire" else None
        if result == "update" and incident_id is None and event is not None:
            # the group is firing but has no open incident: its firing was silenced, or its incident was resolved
            # (by a person, a playbook or PagerDuty) while the condition still held. A new problem event opens a
            # new incident, as PagerDuty does for a trigger after a resolve (silences are checked below).
            result = "fire"
        if result == "fire":
            sample = event or (Event.model_validate(ev.sample) if ev.sample else None)
            if incident_id is None and self.silences is not None:
                silence = await self.silences.check(rule, group, sample)
                if silence is not None and ev.result == "fire" and await self.incidents.store.open_id(key):
                    silence = None  # an incident is open for the group: the firing joins it
                if silence is not None:  # recorded, but no incident and no playbook
                    await self.silences.suppressed(silence, rule, key, group, sample)
                    return Decision(rule.id, key, "silenced", ev.state, ev.value, None)
                if ev.held or ev.result != "fire":  # a silence's mark (`held` says so on fire) is cleared
                    await self.silences.forget(key)
            value = f" (value {ev.value:g})" if ev.value is not None else ""
            incident, created = await self.incidents.open(
                key=key, rule_id=rule.id, title=self._title(rule, group, sample), severity=rule.severity, group=group,
                playbook=rule.playbook, event=sample, text=f"rule {rule.id} fired{value}")
            incident_id = incident.id
            self.metrics.rule_firings.labels(rule=rule.id).inc()
            # debug: the incident's timeline has it, and "incident opened" is logged for a new incident
            log.debug("rule fired", rule_id=rule.id, incident_id=incident.id, created=created)
            if created and rule.playbook and self.start_playbook:
                await self.start_playbook(incident, rule.playbook, sample)
        elif incident_id and event is not None and ev.result in ("update", "resolving", "resolve", "none"):
            await self.incidents.record_event(incident_id, event)
        if ev.result == "resolve" and incident_id:
            await self.incidents.resolve(incident_id, f"rule:{rule.id}", "condition cleared")
        if ev.result == "resolve" and self.silences is not None:
            await self.silences.forget(key)
        return Decision(rule.id, key, result, ev.state, ev.value, incident_id)
