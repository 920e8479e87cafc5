"""PagerDutySync: one incident state on both sides — responder and PagerDuty — without echoes.

    sync = PagerDutySync(services.incidents, deps.state, PagerDutyLinks(redis, keys), providers["pagerduty"])
    sync.attach()                                   # outbound: listens on IncidentService.on_timeline
    evaluator.before_rules.append(sync.before_rules)  # inbound: PagerDuty events, before the rules see them
    sync.start()                                    # inside the running loop (app startup)
    ...
    await sync.close()                              # app cleanup: drains what is queued (bounded)

Outbound (responder -> PagerDuty). When an incident for which responder paged PagerDuty (ProviderState
`pagerduty` holds the dedup key of a `pagerduty.trigger`) is acknowledged — the first acknowledgement, by
anyone — or resolved by anyone other than PagerDuty itself (actor `pagerduty:...`), an Events API v2
acknowledge / resolve with that same dedup key is sent through the PagerDutyProvider. The listener only
enqueues; one worker sends, in order, with up to `attempts` tries for retryable failures (Retry-After
honoured), and writes the outcome on the timeline (actor `sync:pagerduty`). A failure is logged and
noted, never raised. Nothing is sent when ProviderState says the alert is already in that state (a
playbook's own `pagerduty.acknowledge`/`resolve` step, or PagerDuty told us first).

Inbound (PagerDuty -> responder), in the engine path: the consumer hands every stored event to the
rules; `before()` runs `on_event` first for PagerDuty events (so they are deduplicated before the 202,
durable in the stream, and retried when Redis fails). The responder incident is found by
1. the PagerDuty incident id, once linked (events about notes and responders carry only that);
2. `data.incident_key` (PagerDuty's name for the Events API dedup key of the alert that opened the
   incident) -> the dedup-key index, or the open incident with that key (the default dedup key is the
   incident key) — accepted only when that incident's ProviderState holds exactly this dedup key.
Then: `incident.acknowledged` acknowledges and `incident.resolved` resolves it, as `pagerduty:<agent>`,
unless it already is (the webhook PagerDuty sends after responder's own acknowledge/resolve changes
nothing: no timeline entry, no call). Escalations, reassignments, priority changes, notes and the
others become timeline entries (threaded into Slack by SlackSync). Events matching no incident are
left to the rules alone.

The dedup-key index is written by the worker when a `pagerduty.*` step lands on an incident's timeline
(read back from ProviderState), and again on every outbound call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from responder.actions.base import ActionResult, StepContext
from responder.actions.pagerduty import PagerDutyAlertParams, PagerDutyProvider
from responder.errors import ActionError, RetryableActionError
from responder.events import Event
from responder.incidents.model import Incident, IncidentState, TimelineEntry
from responder.incidents.service import IncidentNotFound, IncidentService
from responder.incidents.timeline_worker import TimelineWorker
from responder.logs import get_logger, redact_text
from responder.observability import report_exception
from responder.store.pagerduty import PagerDutyLinks
from responder.store.provider_state import ProviderState
from responder.store.redis import RedisError

__all__ = ["PAGERDUTY_ACTOR", "SYNC_ACTOR", "PagerDutySync", "pagerduty_actor"]

log = get_logger(__name__)

STATE = "pagerduty"  # the PagerDutyProvider's ProviderState name
#: actors of changes that came from PagerDuty start with this; they are never sent back
PAGERDUTY_ACTOR = "pagerduty:"
SYNC_ACTOR = "sync:pagerduty"


def pagerduty_actor(event: Event) -> str:
    """`pagerduty:<who>`: the agent's name (a user, or the integration), else the client, else PagerDuty."""
    who = event.labels.get("agent") or event.labels.get("client") or "PagerDuty"
    return PAGERDUTY_ACTOR + who


@dataclass(frozen=True)
class _Job:
    kind: Literal["index", "acknowledge", "resolve"]
    incident: Incident
    cause: str  # the actor whose change this follows


class PagerDutySync(TimelineWorker[_Job]):
    name = "pagerduty-sync"

    def __init__(self, incidents: IncidentService, state: ProviderState, links: PagerDutyLinks,
                 provider: PagerDutyProvider | None, *, max_queue: int = 1000, attempts: int = 3,
                 backoff_seconds: float = 1.0, max_wait_seconds: float = 30.0) -> None:
        super().__init__(incidents, max_queue=max_queue)
        self.state = state
        self.links = links
        self.provider = provider
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self.max_wait_seconds = max_wait_seconds

    async def before_rules(self, event: Event) -> None:
        """Evaluator hook: a PagerDuty event updates its incident first, then the rules see it.

        A Redis failure propagates (the event stays pending and is retried); any other failure is reported
        and the event still goes to the rules.
        """
        if event.source != "pagerduty":
            return
        try:
            await self.on_event(event)
        except RedisError:
            raise
        except Exception as exc:
            report_exception(exc, event_id=event.id)

    # -- outbound: the listener --------------------------------------------------------------------
    def job_for(self, incident: Incident, entry: TimelineEntry, state_changed: bool) -> _Job | None:
        if entry.kind == "step" and entry.text.startswith("pagerduty."):
            return _Job("index", incident, entry.actor)
        if self.provider is None or entry.actor.startswith(PAGERDUTY_ACTOR):
            return None  # nothing to send with, or the change came from PagerDuty: never echo it back
        if state_changed and incident.state is IncidentState.RESOLVED:
            return _Job("resolve", incident, entry.actor)
        first_ack = entry.text == "acknowledged" and incident.acknowledged_by == entry.actor
        if first_ack and incident.state.is_open:
            return _Job("acknowledge", incident, entry.actor)
        return None

    def failed(self, job: _Job, exc: Exception) -> None:
        log.warning("pagerduty sync failed", incident_id=job.incident.id, kind=job.kind,
                    error=self._clean(f"{exc.__class__.__name__}: {exc}")[:300])

    async def apply(self, job: _Job) -> None:
        stored = await self.state.get(job.incident.id, STATE)
        dedup = stored.get("dedup_key")
        if not dedup:
            return  # responder never paged PagerDuty for this incident: nothing to follow
        await self.links.link_dedup_key(dedup, job.incident.id)
        if job.kind == "index":
            return
        status = stored.get("status") or "triggered"
        if status == "resolved" or (job.kind == "acknowledge" and status == "acknowledged"):
            return  # PagerDuty is there already (it told us, or a playbook step did it)
        assert self.provider is not None
        try:
            incident = await self.incidents.get(job.incident.id)
        except IncidentNotFound:
            incident = job.incident
        try:
            result = await self._send(job.kind, dedup, incident)
        except ActionError as exc:
            detail = self._clean(str(exc))[:300]
            log.warning("pagerduty sync could not update the alert", incident_id=incident.id, action=job.kind,
                        dedup_key=dedup, retryable=exc.retryable, error=detail)
            await self.incidents.note(incident.id, SYNC_ACTOR, f"could not {job.kind} the PagerDuty alert "
                                      f"{dedup}: {detail}", kind="sync", dedup_key=dedup, cause=job.cause)
            return
        log.info("pagerduty alert followed the incident", incident_id=incident.id, action=job.kind,
                 dedup_key=dedup, cause=job.cause)
        await self.incidents.note(incident.id, SYNC_ACTOR, result.summary, kind="sync", dedup_key=dedup,
                                  cause=job.cause)

    async def _send(self, verb: str, dedup: str, incident: Incident) -> ActionResult:
        assert self.provider is not None
        ctx = StepContext(incident=incident, run_id="pagerduty-sync", step=verb)
        for attempt in range(1, self.attempts + 1):
            try:
                return await self.provider.run(verb, PagerDutyAlertParams(dedup_key=dedup), ctx)
            except RetryableActionError as exc:
                if attempt == self.attempts:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else self.backoff_seconds * 2 ** (attempt - 1)
                await asyncio.sleep(min(wait, self.max_wait_seconds))
        raise AssertionError("unreachable")  # pragma: no cover

    def _clean(self, text: str) -> str:
        return redact_text(text, self.provider.secrets()) if self.provider is not None else text

    # -- inbound -----------------------------------------------------------------------------------
    async def on_event(self, event: Event) -> Incident | None:
        """Apply a PagerDuty incident event to the responder incident it belongs to; returns that incident."""
        if event.source != "pagerduty" or not event.name.startswith("incident."):
            return None
        incident = await self.find(event.labels.get("incident_id"), event.labels.get("incident_key"))
        if incident is None:
            return None
        actor = pagerduty_actor(event)
        if event.name == "incident.acknowledged":
            if incident.state is IncidentState.RESOLVED or incident.acknowledged_at is not None:
                return incident  # already so (often: our own acknowledge, coming back): nothing changes
            await self._mark(incident.id, event, "acknowledged")
            log.info("incident acknowledged in PagerDuty", incident_id=incident.id, actor=actor)
            return await self.incidents.acknowledge(incident.id, actor)
        if event.name == "incident.resolved":
            if incident.state is IncidentState.RESOLVED:
                return incident
            await self._mark(incident.id, event, "resolved")
            log.info("incident resolved in PagerDuty", incident_id=incident.id, actor=actor)
            return await self.incidents.resolve(incident.id, actor)
        await self.incidents.note(incident.id, actor, self.describe(event), kind="pagerduty", event_id=event.id,
                                  pagerduty_incident=event.labels.get("incident_id"), url=event.url)
        return incident

    async def find(self, pd_incident_id: str | None, incident_key: str | None) -> Incident | None:
        """The responder incident behind a PagerDuty incident (see the module docstring), linking it by id."""
        if pd_incident_id:
            linked = await self.links.by_pd_incident(pd_incident_id)
            incident = await self.incidents.store.get(linked) if linked else None
            if incident is not None:
                return incident
        if not incident_key:
            return None
        candidates: list[str] = []
        for found in (await self.links.by_dedup_key(incident_key), await self.incidents.store.open_id(incident_key)):
            if found and found not in candidates:
                candidates.append(found)
        paged: list[Incident] = []
        for candidate in candidates:
            incident = await self.incidents.store.get(candidate)
            if incident is not None and (await self.state.get(incident.id, STATE)).get("dedup_key") == incident_key:
                paged.append(incident)
        best = next((i for i in paged if i.state.is_open), paged[0] if paged else None)
        if best is not None and pd_incident_id:
            await self.links.link_pd_incident(pd_incident_id, best.id)
        return best

    async def _mark(self, incident_id: str, event: Event, status: str) -> None:
        """Remember PagerDuty's side in ProviderState, so nothing sends the same change back."""
        stored = await self.state.get(incident_id, STATE)
        key = event.labels.get("incident_key")
        if stored.get("dedup_key") and (key is None or key == stored["dedup_key"]):
            await self.state.set(incident_id, STATE, status=status)

    @staticmethod
    def describe(event: Event) -> str:
        """A timeline line for a PagerDuty incident event other than acknowledged/resolved."""
        labels, notes = event.labels, event.annotations
        ref = f"#{labels['incident_number']}" if "incident_number" in labels else labels.get("incident_id", "")
        who = labels.get("assignees")
        texts = {
            "incident.triggered": f"PagerDuty incident {ref} opened" + (f", assigned to {who}" if who else ""),
            "incident.escalated": f"PagerDuty incident {ref} escalated" + (f" to {who}" if who else "")
                                  + (f" (level {labels['escalation_level']})" if "escalation_level" in labels else ""),
            "incident.reassigned": f"PagerDuty incident {ref} reassigned" + (f" to {who}" if who else ""),
            "incident.delegated": f"PagerDuty incident {ref} delegated to escalation policy "
                                  f"{labels.get('escalation_policy', '?')}",
            "incident.priority_updated": f"PagerDuty incident {ref} priority changed to "
                                         f"{labels.get('priority', 'none')}",
            "incident.unacknowledged": f"PagerDuty incident {ref} unacknowledged (it pages again)",
            "incident.reopened": f"PagerDuty incident {ref} reopened",
            "incident.annotated": f"note in PagerDuty: {notes.get('content', '')}",
            "incident.responder.added": f"responder {notes.get('responder', '?')} requested in PagerDuty"
                                        + (f": {notes['message']}" if notes.get("message") else ""),
            "incident.responder.replied": f"responder {notes.get('responder', '?')} replied in PagerDuty: "
                                          f"{notes.get('responder_state', '?')}",
            "incident.status_update_published": f"status update in PagerDuty: {notes.get('message', '')}",
        }
        return texts.get(event.name, event.summary)[:2000]
