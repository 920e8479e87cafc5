"""TimelineWorker: the base of the notifiers that follow incidents (Slack message sync, PagerDuty sync).

It listens to IncidentService.on_timeline, turns an entry into a job (`job_for`), queues it without ever
blocking the incident service, and one background task applies the jobs in order (`apply`). A failing job
is reported by `failed` and dropped; `close` stops listening and drains the queue for a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from responder.incidents.model import Incident, TimelineEntry
from responder.incidents.service import IncidentService
from responder.logs import get_logger

__all__ = ["TimelineWorker"]

log = get_logger(__name__)
J = TypeVar("J")


class TimelineWorker(ABC, Generic[J]):
    #: names the task and the log lines
    name = "timeline-worker"

    def __init__(self, incidents: IncidentService, *, max_queue: int = 1000) -> None:
        self.incidents = incidents
        self.queue: asyncio.Queue[J] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @abstractmethod
    def job_for(self, incident: Incident, entry: TimelineEntry, state_changed: bool) -> J | None:
        """The job this entry calls for, or None."""

    @abstractmethod
    async def apply(self, job: J) -> None:
        """Do one job (in the worker task, in queue order)."""

    @abstractmethod
    def failed(self, job: J, exc: Exception) -> None:
        """Report a job that raised (no secrets); the worker carries on."""

    # -- wiring ------------------------------------------------------------------------------------
    def attach(self) -> None:
        """Listen to every timeline entry of the incident service (safe to call twice)."""
        if self.on_timeline not in self.incidents.on_timeline:
            self.incidents.on_timeline.append(self.on_timeline)

    def detach(self) -> None:
        with contextlib.suppress(ValueError):
            self.incidents.on_timeline.remove(self.on_timeline)

    def start(self) -> None:
        """Start the worker (call from inside the running event loop)."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._work(), name=self.name)

    async def flush(self) -> None:
        """Wait until everything queued so far was done (or dropped)."""
        await self.queue.join()

    async def close(self, drain_seconds: float = 5.0) -> None:
        """Stop listening, give the queue up to `drain_seconds` to drain, then stop the worker."""
        self.detach()
        self._closing = True
        task, self._task = self._task, None
        if task is None:
            return
        try:
            async with asyncio.timeout(drain_seconds):
                await self.queue.join()
        except TimeoutError:
            log.warning(f"{self.name} stopped with work still queued", dropped=self.queue.qsize())
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # -- listener and worker -----------------------------------------------------------------------
    async def on_timeline(self, incident: Incident, entry: TimelineEntry, state_changed: bool) -> None:
        if self._closing:
            return
        job = self.job_for(incident, entry, state_changed)
        if job is None:
            return
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            log.warning(f"{self.name} queue full, dropped", incident_id=incident.id)

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self.apply(job)
            except Exception as exc:  # never let one bad job stop the worker
                self.failed(job, exc)
            finally:
                self.queue.task_done()
