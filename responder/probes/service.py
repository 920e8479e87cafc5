"""ProbeService: one tick = claim the slot, run the check, record the result, append the event.

Every replica schedules every probe; the claim (`SET NX PX` on probe + slot) makes exactly one of
them run each slot. The result goes into the same event stream as webhooks (delivery id
`probe:{id}:{slot}`, so a redelivery is dropped), which is how rules see probes. The service is
also the ProbeChecker a playbook `verify` step uses to run a named probe on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from responder.actions.base import CheckOutcome
from responder.clock import Clock
from responder.events import Event, EventStatus, fingerprint
from responder.logs import get_logger
from responder.probes.checks import CheckResult, run_check
from responder.probes.model import Probe, ProbeSettings
from responder.probes.scheduler import ProbeScheduler
from responder.store.events import EventStream
from responder.store.probes import ProbeHistory, ProbeStore
from responder.store.redis import RedisError

__all__ = ["ProbeRun", "ProbeService", "probe_event"]

log = get_logger(__name__)


@dataclass(frozen=True)
class ProbeRun:
    """A tick that won its claim: the slot, the result and the event it became."""

    probe_id: str
    slot: int
    result: CheckResult
    event: Event
    duplicate: bool = False


def probe_event(probe: Probe, slot: int, now: datetime, result: CheckResult) -> Event:
    """The event a result becomes: source `probe`, name = the probe's id, labels (with service) from the probe."""
    labels = dict(probe.labels)
    if probe.service:
        labels["service"] = probe.service
    annotations = {"kind": probe.kind}
    if result.latency_ms is not None:
        annotations["latency_ms"] = f"{result.latency_ms:g}"
    return Event(source="probe", name=probe.id, service=probe.service,
                 status=EventStatus.OK if result.ok else EventStatus.FAILING, value=result.value,
                 summary=result.reason, labels=labels, annotations=annotations,
                 fingerprint=fingerprint("probe", probe.id, labels), occurred_at=now, received_at=now,
                 delivery_id=f"probe:{probe.id}:{slot}")


class ProbeService:
    """Runs probes for this replica: scheduled ticks (claimed per slot) and on-demand checks."""

    def __init__(self, probes: dict[str, Probe], disabled: dict[str, str], store: ProbeStore, events: EventStream,
                 clock: Clock, settings: ProbeSettings, *, owner: str) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.settings = settings
        self.owner = owner
        self._probes: dict[str, Probe] = {}
        self._disabled: dict[str, str] = {}
        self._set(probes, disabled)
        self._semaphore = asyncio.Semaphore(settings.max_concurrent)
        self._session: aiohttp.ClientSession | None = None
        self.scheduler: ProbeScheduler | None = None

    def _set(self, probes: dict[str, Probe], disabled: dict[str, str]) -> None:
        reasons = dict(disabled)
        for probe in probes.values():
            if probe.id in reasons:
                continue
            if not probe.enabled:
                reasons[probe.id] = "enabled: false"
            elif (empty := probe.empty_target()) is not None:
                reasons[probe.id] = f"{empty} is empty"
        self._probes, self._disabled = dict(probes), reasons

    # --- what is defined -------------------------------------------------------------------------------

    @property
    def definitions(self) -> dict[str, Probe]:
        """Every probe loaded, enabled or not, in file order."""
        return self._probes

    @property
    def disabled(self) -> dict[str, str]:
        """Probe id -> why it does not run."""
        return self._disabled

    def runnable(self) -> list[Probe]:
        return [p for p in self._probes.values() if p.id not in self._disabled]

    def has_probe(self, probe_id: str) -> bool:
        """ProbeChecker: a probe that can run (defined, enabled, with a target)."""
        return probe_id in self._probes and probe_id not in self._disabled

    def _log_disabled(self, ids: list[str]) -> None:
        for probe_id in ids:
            reason = self._disabled[probe_id]
            if reason != "enabled: false":
                log.warning(f"PROBE DISABLED: {probe_id} will not run: {reason}", probe=probe_id, reason=reason)
            else:
                log.info("probe disabled in its file", probe=probe_id)

    # --- running -----------------------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # its own pool: probes never queue behind (or starve) the providers' vendor calls; one
            # connection per check, so a listener that went away is seen as such
            connector = aiohttp.TCPConnector(limit=self.settings.max_concurrent, force_close=True, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": "responder-probe"})
        return self._session

    async def _run(self, probe: Probe, now: datetime) -> CheckResult:
        async with self._semaphore:  # the probe's own timeout starts once it has a place
            return await run_check(probe, self._http(), now)

    async def tick(self, probe_id: str) -> ProbeRun | None:
        """One scheduled run: None when the probe is not runnable, another replica claimed the slot, or the
        store is down; otherwise the run, already recorded and appended to the event stream."""
        probe = self._probes.get(probe_id)
        if probe is None or probe_id in self._disabled:
            return None
        now = self.clock.now()
        slot = probe.slot(now)
        try:
            if not await self.store.claim(probe.id, slot, self.owner, 2 * probe.interval_ms):
                return None
            result = await self._run(probe, now)
            event = probe_event(probe, slot, now, result)
            record = {"at": now.isoformat(), "slot": slot, "status": event.status.value, "value": result.value,
                      "latency_ms": result.latency_ms, "reason": result.reason, "replica": self.owner}
            previous = await self.store.record(probe.id, record, now, result.ok, self.settings.keep_results)
            [appended] = await self.events.append([event])
        except (RedisError, OSError) as exc:
            log.warning("probe tick skipped: store unavailable", probe=probe_id, error=exc.__class__.__name__)
            return None
        if previous is not None and previous != event.status.value:
            emit = log.warning if not result.ok else log.info
            emit(f"probe {event.status.value}", probe=probe.id, reason=result.reason, value=result.value)
        return ProbeRun(probe.id, slot, result, event, appended.duplicate)

    async def scheduled_tick(self, probe_id: str) -> None:
        """The scheduler's job: a tick that never raises into APScheduler."""
        try:
            await self.tick(probe_id)
        except Exception:
            log.exception("probe tick failed", probe=probe_id)

    async def check(self, probe_id: str) -> CheckOutcome:
        """ProbeChecker: run a probe once now (no claim, not recorded, no event) for a `verify` step."""
        probe = self._probes.get(probe_id)
        if probe is None or probe_id in self._disabled:
            reason = self._disabled.get(probe_id, "not defined")
            return CheckOutcome(False, f"probe {probe_id} cannot run: {reason}", answered=False)
        result = await self._run(probe, self.clock.now())
        return CheckOutcome(result.ok, result.reason, result.value, result.answered)

    async def history(self, probe_ids: list[str], limit: int) -> dict[str, ProbeHistory]:
        return await self.store.history(probe_ids, self.clock.now(), limit)

    def reload(self, probes: dict[str, Probe], disabled: dict[str, str]) -> dict[str, list[str]]:
        """Swap in new definitions and (when scheduling) add, remove and reschedule jobs; no restart."""
        before = {p.id: p for p in self.runnable()}
        was_disabled = dict(self._disabled)
        self._set(probes, disabled)
        after = {p.id: p for p in self.runnable()}
        changes = {"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
                   "changed": sorted(i for i in set(after) & set(before) if after[i] != before[i])}
        if self.scheduler is not None:
            self.scheduler.sync(list(after.values()))
        log.info("probes reloaded", running=len(after), **changes)
        self._log_disabled([i for i, reason in self._disabled.items() if was_disabled.get(i) != reason])
        return changes

    @contextlib.asynccontextmanager
    async def running(self, *, schedule: bool) -> AsyncIterator[ProbeService]:
        """Start the schedule (when `schedule`), and on exit stop it and close the probes' HTTP pool."""
        self._log_disabled(list(self._disabled))
        if schedule:
            self.scheduler = ProbeScheduler(self.scheduled_tick)
            self.scheduler.start(self.runnable())
            log.info("probes scheduled", probes=len(self.runnable()), disabled=len(self._disabled))
        try:
            yield self
        finally:
            if self.scheduler is not None:
                await self.scheduler.shutdown(grace=max((p.deadline for p in self.runnable()), default=0) + 1)
                self.scheduler = None
            if self._session is not None:
                await self._session.close()
                self._session = None

    def describe(self, probe: Probe) -> dict[str, Any]:
        """The definition as the API shows it (no targets: URLs and headers may carry secrets)."""
        return {"id": probe.id, "kind": probe.kind, "description": probe.description, "service": probe.service,
                "component": probe.component, "every_seconds": probe.every.total_seconds(),
                "timeout_seconds": probe.deadline, "enabled": probe.id not in self._disabled,
                "disabled_reason": self._disabled.get(probe.id)}
