"""ProbeScheduler: APScheduler 3.x AsyncIOScheduler with its in-memory job store, one job per probe.

Every replica runs one of these with every probe; the per-slot claim in the tick decides who runs.
Jobs fire at `slot * interval + phase` (the phase comes from the probe id, so all replicas fire a
probe at the same moments and probes sharing an interval are spread over it), plus the probe's
jitter. `max_instances=1` and `coalesce` keep an overrunning probe from piling up runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from responder.probes.model import Probe

__all__ = ["ProbeScheduler"]

Spec = tuple[int, float, int]  # interval ms, jitter s, phase ms


def _spec(probe: Probe) -> Spec:
    return probe.interval_ms, probe.jitter.total_seconds(), probe.phase_ms


class ProbeScheduler:
    """Owns the APScheduler instance and the tick tasks it started; `sync` applies a new probe list."""

    def __init__(self, run: Callable[[str], Awaitable[None]]) -> None:
        self._run = run
        self._scheduler: AsyncIOScheduler | None = None
        self._specs: dict[str, Spec] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def job_ids(self) -> list[str]:
        return sorted(self._specs)

    def start(self, probes: Iterable[Probe]) -> None:
        """Start inside the running loop (AsyncIOScheduler binds to it), then add the jobs."""
        for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
            logger = logging.getLogger(name)  # "Added job"/"Running job" per tick: far too chatty at INFO
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)
        self._scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        self._scheduler.start()
        self.sync(probes)

    def sync(self, probes: Iterable[Probe]) -> None:
        """Add new probes, remove the ones gone, reschedule the ones whose timing changed."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        wanted = {p.id: p for p in probes}
        for probe_id in set(self._specs) - set(wanted):
            scheduler.remove_job(probe_id)
            del self._specs[probe_id]
        for probe_id, probe in wanted.items():
            spec = _spec(probe)
            if self._specs.get(probe_id) == spec:
                continue
            interval_ms, jitter, phase_ms = spec
            start = datetime.fromtimestamp(phase_ms / 1000, UTC)  # the epoch + phase: fires at slot boundaries
            trigger = IntervalTrigger(seconds=interval_ms / 1000, start_date=start, jitter=jitter or None, timezone=UTC)
            scheduler.add_job(self._fire, trigger, args=[probe_id], id=probe_id, name=f"probe {probe_id}",
                              replace_existing=True, max_instances=1, coalesce=True,
                              misfire_grace_time=max(interval_ms // 1000, 1))
            self._specs[probe_id] = spec

    async def _fire(self, probe_id: str) -> None:
        if self._stopping:
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._run(probe_id)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def shutdown(self, grace: float = 10.0) -> None:
        """Stop firing, let the ticks in flight finish (each is bounded by its probe's timeout) for up to
        `grace` seconds, then cancel the rest. Draining first matters: a tick cancelled in the middle of a
        Redis command can leave a pooled connection that stalls the next user (seen under load)."""
        self._stopping = True
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.pause()
        await asyncio.sleep(0)  # jobs submitted just now start (and return at once)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the loop's next turn
        self._specs.clear()
