"""The whole pipeline in process, on a virtual clock, in dry-run: what `responder test` and `responder replay` run.

The daemon's own app is built (`create_app`) on the embedded fakeredis with a FakeClock and no background
loops. Events go through the real path — the stream, the consumer, the rules, incidents, the playbook runner —
and time only moves when told to: `advance(until)` jumps from one due timer (`for`, resolve delays, window
edges, repeats, silence ends) to the next, running the engine's tick at each, so an hour of virtual time
costs as many ticks as there are timers, not 3,600.

Nothing leaves the process: the configuration is a copy with every provider unconfigured, ChatOps off, no
external Redis and `automation.dry_run: true`. Each step is rendered and recorded (with its parameters) as
it would be sent; no vendor is called. Webhook payloads go through the vendor's adapter (`parse`, not
`verify`: signatures are not checked).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from responder.app import create_app
from responder.clock import FakeClock
from responder.config.loader import LoadedConfig
from responder.engine.evaluator import Decision
from responder.events import Event, EventStatus, Severity, fingerprint
from responder.incidents.model import Incident
from responder.ingest.base import IngestRequest
from responder.keys import SERVICES
from responder.logs import configure_logging
from responder.playbooks.model import Step
from responder.probes.checks import CheckResult
from responder.probes.service import probe_event
from responder.services import Services

__all__ = ["Observed", "StepRun", "VirtualPipeline", "quiet_logs", "rehearsal_config"]

#: a timer that stays due after this many ticks at one instant is stepped past (as the daemon's 1 s tick would)
_MAX_TICKS_AT_ONCE = 50


def rehearsal_config(loaded: LoadedConfig) -> LoadedConfig:
    """A copy that can only rehearse: no provider credentials, no ChatOps, embedded Redis, dry-run."""
    cfg = loaded.config
    config = cfg.model_copy(update={
        "providers": type(cfg.providers)(),
        "chatops": type(cfg.chatops)(),
        "redis": cfg.redis.model_copy(update={"url": None}),
        "automation": cfg.automation.model_copy(update={"dry_run": True}),
        "record": type(cfg.record)(),
    })
    return LoadedConfig(config=config, rules=loaded.rules, playbooks=loaded.playbooks, probes=loaded.probes,
                        disabled_probes=loaded.disabled_probes, path=loaded.path, files=loaded.files)


@contextlib.contextmanager
def quiet_logs(stream: TextIO | None = None) -> Iterator[None]:
    """Only errors, as JSON lines on stderr, while rehearsing: the start-up warnings are the daemon's business."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging("ERROR", stream=stream or sys.stderr)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@dataclass(frozen=True)
class Observed:
    """One rule decision and when it was taken (virtual time)."""

    at: datetime
    decision: Decision


@dataclass(frozen=True)
class StepRun:
    """One step a playbook run recorded: in dry-run, what would have been sent and with which parameters."""

    incident_id: str
    run_id: str
    playbook: str
    phase: str  # main | resolve | manual
    step: str
    action: str
    status: str  # dry-run (would send) | skipped | failed (e.g. invalid parameters)
    params: dict[str, Any] | None
    started_at: datetime | None
    #: the step whose on_failure branch this one belongs to (a rehearsal runs those branches too)
    on_failure_of: str | None = None
    detail: str = ""


def _walk(steps: list[Step], parent: str | None = None) -> list[tuple[Step, str | None]]:
    out: list[tuple[Step, str | None]] = []
    for step in steps:
        out.append((step, parent))
        out += _walk(step.on_failure, step.name)
    return out


@dataclass
class VirtualPipeline:
    services: Services
    clock: FakeClock
    loaded: LoadedConfig
    observed: list[Observed] = field(default_factory=list)
    _sequence: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, loaded: LoadedConfig, start: datetime) -> AsyncIterator[VirtualPipeline]:
        clock = FakeClock(start)
        app = create_app(rehearsal_config(loaded), env={}, clock=clock, background=False, consumer_name="rehearsal")
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()  # the app's startup (stores, services) without a listening socket
        try:
            services = app[SERVICES]
            await services.events.ensure_group(services.keys.engine_group)
            pipeline = cls(services, clock, loaded)
            pipeline._observe()
            yield pipeline
        finally:
            await runner.cleanup()

    def _observe(self) -> None:
        """Keep every rule decision (fire, pending, reset, resolve, silenced, ...) with its virtual time."""
        evaluator = self.services.evaluator
        handle, tick = evaluator.handle, evaluator.tick

        def keep(inner: Callable[..., Awaitable[list[Decision]]]) -> Callable[..., Awaitable[list[Decision]]]:
            async def observed(*args: Any) -> list[Decision]:
                decisions = await inner(*args)
                self.observed += [Observed(self.clock.now(), d) for d in decisions]
                return decisions
            return observed

        evaluator.handle = keep(handle)  # type: ignore[method-assign,assignment]
        evaluator.tick = keep(tick)  # type: ignore[method-assign,assignment]

    # -- inputs ---------------------------------------------------------------------------------
    def webhook(self, source: str, body: bytes, headers: Mapping[str, str] | None = None, *,
                content_type: str = "application/json", query: Mapping[str, str] | None = None) -> list[Event]:
        """The events a vendor's webhook becomes now (the adapter's `parse`; raises IngestError when invalid)."""
        adapter = self.services.adapters.get(source)
        if adapter is None:
            raise KeyError(f"unknown webhook source {source!r} (known: {', '.join(sorted(self.services.adapters))})")
        request = IngestRequest(body=body, headers=CIMultiDictProxy(CIMultiDict(headers or {})),
                                query=dict(query or {}), content_type=content_type, received_at=self.clock.now())
        return adapter.parse(request)

    def event(self, *, source: str, name: str, status: EventStatus, service: str | None = None,
              severity: Severity | None = None, value: float | None = None, summary: str = "", url: str | None = None,
              labels: Mapping[str, str] | None = None, annotations: Mapping[str, str] | None = None,
              delivery_id: str | None = None) -> Event:
        """A normalized event received now; its series is (source, name, labels), as the adapters make them."""
        now = self.clock.now()
        labels = dict(labels or {})
        return Event(source=source, name=name, status=status, service=service, severity=severity, value=value,
                     summary=summary, url=url, labels=labels, annotations=dict(annotations or {}),
                     fingerprint=fingerprint(source, name, labels), occurred_at=now, received_at=now,
                     delivery_id=delivery_id or f"rehearsal:{source}:{name}:{next(self._sequence)}")

    def probe_result(self, probe_id: str, *, ok: bool, value: float | None = None, summary: str = "") -> Event:
        """The event a result of the configured probe `probe_id` becomes now (raises KeyError if unknown)."""
        probe = self.loaded.probes[probe_id]
        now = self.clock.now()
        event = probe_event(probe, probe.slot(now), now, CheckResult(ok, summary or ("ok" if ok else "failing"),
                                                                     value))
        # one delivery per input (the daemon makes one per slot; a test may send results more often)
        return event.model_copy(update={"delivery_id": f"{event.delivery_id}:{next(self._sequence)}"})

    async def feed(self, events: list[Event]) -> None:
        """Append to the stream and let the engine handle them now, with the playbook runs they start."""
        if not events:
            return
        await self.services.events.append(events)
        while await self.services.consumer.poll(block_ms=0):
            await self.services.runner.drain()
        await self.settle()

    # -- time -----------------------------------------------------------------------------------
    async def next_due(self) -> datetime | None:
        """The earliest timer of the engine: rule timers, repeating steps, silences holding a group back."""
        keys = self.services.keys
        due: list[float] = []
        for key in (keys.timers, keys.repeats_due, keys.suppressed_due):
            first = await self.services.events.redis.zrange(key, 0, 0, withscores=True)
            if first:
                due.append(float(first[0][1]))
        if not due:
            return None
        return datetime.fromtimestamp(min(due) / 1000, self.clock.now().tzinfo)

    async def tick(self) -> None:
        await self.services.consumer.tick()
        await self.services.runner.drain()

    async def settle(self) -> None:
        """Tick until nothing is due at the current instant."""
        for _ in range(_MAX_TICKS_AT_ONCE):
            await self.tick()
            due = await self.next_due()
            if due is None or due > self.clock.now():
                return
        self.clock.advance(self.services.consumer.config.tick.total_seconds())

    async def advance(self, until: datetime) -> None:
        """Run every timer due before `until` at its own time, then move the clock to `until`."""
        while True:
            due = await self.next_due()
            if due is None or due >= until:
                break
            if due > self.clock.now():
                self.clock.set(due)
            await self.settle()
        if until > self.clock.now():
            self.clock.set(until)

    # -- what happened --------------------------------------------------------------------------
    async def incidents(self) -> list[Incident]:
        return sorted(await self.services.incidents.store.list(), key=lambda i: int(i.id) if i.id.isdigit() else 0)

    async def rule_state(self, member: str) -> str:
        """inactive | pending | firing for one rule group (`rule_id|k=v,...`)."""
        state = await self.services.events.redis.hget(self.services.keys.rule_state(member), "state")
        return str(state) if state else "inactive"

    async def steps(self, incident_id: str) -> list[StepRun]:
        """Every step the incident's runs recorded, run by run, in the order they ran."""
        runs, playbooks = self.services.runs, self.services.runner.playbooks
        out: list[StepRun] = []
        for run_id in await runs.for_incident(incident_id):
            run = await runs.get(run_id)
            playbook = playbooks.get(run["playbook"]) if run else None
            if run is None or playbook is None:
                continue
            steps = playbook.steps if run.get("steps", "main") == "main" else playbook.on_resolve
            for step, parent in _walk(steps):
                names = [step.name] + [f"{step.name} (repeat {n})"
                                       for n in range(1, await runs.repeat_count(run_id, step.name) + 1)]
                for name in names:
                    record = await runs.step_record(run_id, name)
                    if record is None:
                        continue
                    started = record.get("started_at")
                    out.append(StepRun(
                        incident_id=incident_id, run_id=run_id, playbook=playbook.id, phase=str(run["phase"]),
                        step=name, action=step.action, status=str(record.get("status")),
                        params=record.get("params"),
                        started_at=datetime.fromisoformat(started) if started else None, on_failure_of=parent,
                        detail=str(record.get("reason") or record.get("error") or "")))
        return out


