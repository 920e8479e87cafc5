"""IncidentService: open, update, acknowledge, mitigate and resolve incidents; every change on the timeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from responder.clock import Clock
from responder.events import Event, Severity
from responder.incidents.model import Incident, IncidentState, TimelineEntry
from responder.incidents.transitions import Action, IllegalTransition, next_state
from responder.logs import get_logger
from responder.observability import report_exception
from responder.store.incidents import IncidentStore

__all__ = ["IncidentNotFound", "IncidentService"]

log = get_logger(__name__)
Listener = Callable[[Incident, str], Awaitable[None]]
#: hears every timeline entry: (incident after the change, the entry, whether the state changed)
TimelineListener = Callable[[Incident, TimelineEntry, bool], Awaitable[None]]


class IncidentNotFound(LookupError):
    pass


class IncidentService:
    """The only writer of incidents.

    Listeners: `on_opened` / `on_resolved` (the runner starts `on_resolve` steps), and `on_timeline`,
    which hears every entry written (the Slack message is kept in sync from there). A listener that
    fails is reported and never undoes or blocks the change; listeners should hand slow work to a task.
    """

    def __init__(self, store: IncidentStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.on_resolved: list[Listener] = []
        self.on_opened: list[Listener] = []
        self.on_timeline: list[TimelineListener] = []

    async def _emit(self, incident: Incident, entry: TimelineEntry, changed: bool) -> None:
        for listener in self.on_timeline:
            try:
                await listener(incident, entry, changed)
            except Exception as exc:  # a notifier must never break the incident itself
                report_exception(exc, incident_id=incident.id)

    def entry(self, actor: str, kind: str, text: str, **data: Any) -> TimelineEntry:
        return TimelineEntry(at=self.clock.now(), actor=actor, kind=kind, text=text, data=data)

    async def get(self, incident_id: str) -> Incident:
        incident = await self.store.get(incident_id)
        if incident is None:
            raise IncidentNotFound(incident_id)
        return incident

    async def open(self, *, key: str, rule_id: str, title: str, severity: Severity, group: dict[str, str],
                   playbook: str | None, event: Event | None, text: str) -> tuple[Incident, bool]:
        """Open an incident for `key`, or return the open one (the firing is appended to it)."""
        now = self.clock.now()
        draft = Incident(
            id="", key=key, rule_id=rule_id, title=title, severity=severity, group=group, playbook=playbook,
            service=event.service if event else group.get("service"), labels=dict(event.labels) if event else {},
            source=event.source if event else None, summary=event.summary if event else "",
            url=event.url if event else None, value=event.value if event else None,
            first_event_id=event.id if event else None, created_at=now, updated_at=now)
        entry = self.entry(f"rule:{rule_id}", "rule", text, event_id=event.id if event else None)
        # one script: create (or find the open one), the entry on its timeline, and the document back
        incident_id, created, incident = await self.store.open(draft, entry)
        if incident is None:
            raise IncidentNotFound(incident_id)
        await self._emit(incident, entry, created)
        if created:
            log.info("incident opened", incident_id=incident_id, rule_id=rule_id, key=key)
            for listener in self.on_opened:
                await listener(incident, "opened")
        return incident, created

    async def record_event(self, incident_id: str, event: Event) -> None:
        """Add an event to the story and refresh the incident's latest value and count."""
        value = f" value={event.value:g}" if event.value is not None else ""
        entry = self.entry(event.source, "event", f"{event.status.value}: {event.name}{value}", event_id=event.id)
        await self._update(incident_id, None, entry,
                           lambda inc: {"event_count": inc.event_count + 1, "value": event.value})

    async def note(self, incident_id: str, actor: str, text: str, kind: str = "human", **data: Any) -> None:
        """Add an entry to the timeline of an existing incident (IncidentNotFound otherwise); one round trip, the
        incident's document is fetched in it only when a listener will hear the entry."""
        entry = self.entry(actor, kind, text, **data)
        exists, incident = await self.store.note(incident_id, entry, want=bool(self.on_timeline))
        if not exists:
            raise IncidentNotFound(incident_id)
        if incident is not None:
            await self._emit(incident, entry, False)

    async def acknowledge(self, incident_id: str, actor: str) -> Incident:
        return await self._update(incident_id, Action.ACKNOWLEDGE, self.entry(actor, "human", "acknowledged"),
                                  lambda inc: {"acknowledged_at": inc.acknowledged_at or self.clock.now(),
                                               "acknowledged_by": inc.acknowledged_by or actor})

    async def resolve(self, incident_id: str, actor: str, note: str = "") -> Incident:
        before = await self.get(incident_id)
        text = "resolved" + (f": {note}" if note else "")
        incident = await self._update(incident_id, Action.RESOLVE, self.entry(actor, "state", text),
                                      lambda inc: {"resolved_at": inc.resolved_at or self.clock.now(),
                                                   "resolved_by": inc.resolved_by or actor})
        if before.state is not IncidentState.RESOLVED:
            log.info("incident resolved", incident_id=incident_id, actor=actor)
            for listener in self.on_resolved:
                await listener(incident, actor)
        return incident

    async def freeze_automation(self, incident_id: str, reason: str) -> Incident:
        """No more automated changes on this incident (a remediation budget ran out); people decide now."""
        return await self._update(incident_id, None, self.entry("runner", "state", f"automation frozen: {reason}"),
                                  lambda inc: {"automation_frozen": True, "frozen_reason": reason})

    async def unfreeze_automation(self, incident_id: str, actor: str) -> Incident:
        return await self._update(incident_id, None, self.entry(actor, "human", "automation unfrozen"),
                                  lambda inc: {"automation_frozen": False, "frozen_reason": None})

    async def start_mitigation(self, incident_id: str, playbook: str, *, known: Incident | None = None) -> Incident:
        """`known`: the incident as the caller last saw it (saves a read when it is still exactly so)."""
        return await self._update(incident_id, Action.START_MITIGATION,
                                  self.entry(f"playbook:{playbook}", "playbook", f"playbook {playbook} started"),
                                  lambda inc: {"mitigating_since": self.clock.now()}, known=known)

    async def end_mitigation(self, incident_id: str, playbook: str, outcome: str, *,
                             known: Incident | None = None) -> Incident | None:
        """Leave `mitigating`; a no-op when the incident was resolved meanwhile."""
        try:
            return await self._update(
                incident_id, Action.END_MITIGATION,
                self.entry(f"playbook:{playbook}", "playbook", f"playbook {playbook} {outcome}"),
                lambda inc: {"mitigating_since": None}, known=known)
        except IllegalTransition:
            await self.note(incident_id, f"playbook:{playbook}", f"playbook {playbook} {outcome}", kind="playbook")
            return None

    async def _update(self, incident_id: str, action: Action | None, entry: TimelineEntry,
                      patch: Callable[[Incident], dict[str, Any]], *, known: Incident | None = None) -> Incident:
        """Apply the transition table with compare-and-set, retrying when another writer got there first.

        `known` (the incident as the caller last saw it) is tried first without reading: the write then also
        requires the stored document to be exactly `known`, so a change made meanwhile is never overwritten."""
        for _ in range(20):
            if known is not None:
                current, expected, known = known, known, None
                try:
                    state = current.state if action is None else next_state(
                        current.state, action, acknowledged=current.acknowledged_at is not None)
                except IllegalTransition:
                    continue  # perhaps no longer so: read it
            else:
                current, expected = await self.get(incident_id), None
                state = current.state if action is None else next_state(
                    current.state, action, acknowledged=current.acknowledged_at is not None)
            updated = current.model_copy(update={**patch(current), "state": state, "updated_at": self.clock.now()})
            outcome = await self.store.save(current.state, updated, entry, expected=expected)
            if outcome == "ok":
                await self._emit(updated, entry, updated.state is not current.state)
                return updated
            if outcome == "missing":
                raise IncidentNotFound(incident_id)
        raise RuntimeError(f"incident {incident_id}: too much contention to apply {action}")
