"""SlackSync: keeps the incident's Slack message in step with the incident, off the incident service's path.

    sync = SlackSync(providers["slack"], services.incidents, deps.state)
    sync.attach()        # listens on IncidentService.on_timeline
    sync.start()         # inside the running loop (app startup)
    ...
    await sync.close()   # app cleanup: finishes what is queued (bounded), then stops

For an incident whose message was posted (a `slack.post` step), every state change edits that message in
place (chat.update, rendered from the incident as it is then) and every timeline entry except raw events
(`kind == "event"`) becomes a short reply in its thread (actor: text). Entries of the slack steps
themselves are not echoed back into the thread.

The listener only enqueues (never blocks, never raises); one worker sends in order. A failed call is logged
(the provider's errors carry no secrets) and dropped after slack-sdk's own rate-limit retry: the next state
change re-renders the whole message anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from responder.actions.slack import SlackProvider
from responder.actions.slack_message import render_reply
from responder.errors import ActionError
from responder.incidents.model import Incident, TimelineEntry
from responder.incidents.service import IncidentNotFound, IncidentService
from responder.incidents.timeline_worker import TimelineWorker
from responder.logs import get_logger, redact_text
from responder.store.provider_state import ProviderState

__all__ = ["SlackSync"]

log = get_logger(__name__)

STATE = "slack"


@dataclass(frozen=True)
class _Change:
    incident: Incident
    entry: TimelineEntry
    state_changed: bool


class SlackSync(TimelineWorker[_Change]):
    name = "slack-sync"

    def __init__(self, provider: SlackProvider, incidents: IncidentService, state: ProviderState, *,
                 max_queue: int = 1000) -> None:
        super().__init__(incidents, max_queue=max_queue)
        self.provider = provider
        self.state = state

    # -- the listener ------------------------------------------------------------------------------
    @staticmethod
    def threaded(entry: TimelineEntry) -> bool:
        """Entries that become thread replies: all but raw events and the slack steps' own results."""
        if entry.kind == "event":
            return False
        return not (entry.kind == "step" and entry.text.startswith("slack."))

    def job_for(self, incident: Incident, entry: TimelineEntry, state_changed: bool) -> _Change | None:
        return _Change(incident, entry, state_changed) if state_changed or self.threaded(entry) else None

    def failed(self, job: _Change, exc: Exception) -> None:
        self._failed("sync", job, exc)

    async def apply(self, change: _Change) -> None:
        stored = await self.state.get(change.incident.id, STATE)
        if not (stored.get("ts") and stored.get("channel")):  # no message posted (yet): nothing to keep in sync
            return
        if change.state_changed:
            try:
                try:  # the incident as it is now: a queued change never paints an older state over a newer one
                    current = await self.incidents.get(change.incident.id)
                except IncidentNotFound:
                    current = change.incident
                await self.provider.update_message(current, stored)
            except Exception as exc:
                self._failed("update", change, exc)
        if self.threaded(change.entry):
            try:
                await self.provider.reply(stored, render_reply(change.entry))
            except Exception as exc:
                self._failed("reply", change, exc)

    def _failed(self, what: str, change: _Change, exc: Exception) -> None:
        detail = str(exc) if isinstance(exc, ActionError) else f"{exc.__class__.__name__}: {exc}"
        log.warning(f"slack sync {what} failed", incident_id=change.incident.id,
                    retryable=getattr(exc, "retryable", False),
                    error=redact_text(detail, self.provider.secrets())[:300])
