"""Chaos harness: `responder run` replicas on one Redis, one of them killed with SIGKILL mid-playbook.

A group is 3 `python3 -m responder run` processes sharing a Redis key prefix, with short leases
(engine.run_lease 1s, engine.claim_idle 1s, engine.tick 100ms). A trial sends one Alertmanager webhook
whose rule runs the `chaos` playbook:

    fast   http.request -> the counting fake answers at once
    slow   http.request -> the fake holds the request for `hold` seconds (continue_on_failure)
    after  http.request -> answered at once

When the slow request reaches the fake, the harness reads the step's owner from Redis (the step's
idempotency record names the replica), kills that process with SIGKILL, starts a replacement (so the
next trial again has 3 replicas) and waits for the run to complete on a survivor. Kill modes:

- "in-flight": the kill lands while the slow request is held open. The step record stays "running";
  the survivor that resumes the run marks it "interrupted" and never calls it again (the documented
  at-most-once window), then runs `after`.
- "after-response": the kill lands right after the fake wrote its response, i.e. inside the window
  between the vendor's answer and the step's result record. Either outcome is allowed ("ok" when the
  record made it, else "interrupted"); the slow call is never repeated.

The fake counts every request per step and trial: each must be exactly 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from responder.store.keys import Keys
from responder.store.redis import Redis, connect
from responder.store.runs import RunStore
from tests.conftest import free_port, write_config
from tests.reliability.pipeline import alert

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("fast", "slow", "after")

RULES = """
rules:
  - id: chaos
    match: {source: alertmanager, name: ServiceDown}
    group_by: [service]
    playbook: chaos
"""

PLAYBOOKS = """
playbooks:
  - id: chaos
    steps:
      - name: fast
        action: http.request
        with: {url: "${FAKE}/fast/{{ incident.service }}"}
      - name: slow
        action: http.request
        timeout: 20s
        continue_on_failure: true
        with: {url: "${FAKE}/slow/{{ incident.service }}"}
      - name: after
        action: http.request
        with: {url: "${FAKE}/after/{{ incident.service }}"}
"""


@dataclass
class Arrival:
    step: str
    trial: str
    incident: str
    at: float  # time.monotonic()


class CountingFake:
    """The vendor: counts every request per (step, trial); holds the slow one for `hold` seconds."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.arrivals: list[Arrival] = []
        self.answered: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_post("/{step}/{trial}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        step, trial = request.match_info["step"], request.match_info["trial"]
        await request.read()
        async with self._changed:
            self.arrivals.append(Arrival(step, trial, request.headers.get("X-Responder-Incident", ""),
                                         time.monotonic()))
            self._changed.notify_all()
        if step != "slow":
            return web.json_response({"ok": True})
        await asyncio.sleep(self.hold)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"ok": true}')
        await response.write_eof()  # written to the socket: the caller may read it from here on
        self.answered.setdefault(trial, asyncio.Event()).set()
        return response

    def count(self, step: str, trial: str) -> int:
        return sum(1 for a in self.arrivals if a.step == step and a.trial == trial)

    async def arrival(self, step: str, trial: str, within: float) -> Arrival:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(
                lambda: any(a.step == step and a.trial == trial for a in self.arrivals)), within)
        return next(a for a in self.arrivals if a.step == step and a.trial == trial)


@dataclass
class Replica:
    proc: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return int(self.proc.pid)


@dataclass
class Trial:
    name: str
    mode: str
    counts: dict[str, int] = field(default_factory=dict)
    completed: bool = False
    run_status: str | None = None
    slow_status: str | None = None
    after_by_survivor: bool = False
    victim: str = ""
    survivor: str = ""
    takeover_s: float | None = None  # kill -> a survivor owns the run (lease lapsed, run claimed)
    next_step_s: float | None = None  # kill -> the `after` request reached the fake
    error: str | None = None

    @property
    def duplicates(self) -> int:
        return sum(max(n - 1, 0) for n in self.counts.values())

    @property
    def ok(self) -> bool:
        return (self.error is None and self.completed and self.counts == {s: 1 for s in STEPS}
                and self.victim != self.survivor and (self.mode != "in-flight" or (
                    self.slow_status == "interrupted" and self.after_by_survivor)))


def owner_pid(owner: str) -> int:
    """The pid in a consumer name (`<host>-<pid>-<random>`, responder.app)."""
    return int(owner.rsplit("-", 2)[1])


class Group:
    """Three replicas on one key prefix; trials run one after the other, each killing one replica."""

    def __init__(self, index: int, root: Path, redis_url: str, fake: CountingFake, *, lease: str = "1s",
                 tick: str = "100ms", size: int = 3) -> None:
        self.index = index
        self.root = root / f"group-{index}"
        self.redis_url = redis_url
        self.fake = fake
        self.size = size
        self.prefix = f"chaos-{uuid.uuid4().hex[:8]}-{index}"  # a fresh key space: old incidents never match
        self.config = write_config(self.root, {
            "responder.yaml": (f"server: {{host: 127.0.0.1}}\nredis: {{prefix: {self.prefix}}}\n"
                               f"engine: {{tick: {tick}, run_lease: {lease}, claim_idle: {lease}}}\n"
                               # trials send webhooks from 127.0.0.1 back to back: never rate limited
                               "ingest: {rate_limits: {per_ip: {requests: 1000000, per: 1m}}}\n"),
            "rules/chaos.yaml": RULES, "playbooks/chaos.yaml": PLAYBOOKS})
        self.replicas: list[Replica] = []
        self.spawned = 0
        self.http: aiohttp.ClientSession | None = None
        self.redis: Redis | None = None
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Group:
        self.http = await self._stack.enter_async_context(aiohttp.ClientSession())
        self.redis = await self._stack.enter_async_context(connect(self.redis_url))
        try:
            await asyncio.gather(*(self.spawn() for _ in range(self.size)))
        except BaseException:
            await self.__aexit__()  # no replica outlives a failed start
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for replica in self.replicas:  # graceful shutdown is not what this tests: no need to wait for it
            with contextlib.suppress(ProcessLookupError):
                replica.proc.kill()
        for replica in self.replicas:
            await replica.proc.wait()
        await self._stack.aclose()

    @property
    def runs(self) -> RunStore:
        assert self.redis is not None
        return RunStore(self.redis, Keys(self.prefix))

    async def spawn(self) -> Replica:
        """Start one more `python3 -m responder run` and wait until it answers /readyz."""
        port = free_port()
        self.spawned += 1
        log = self.root / f"replica-{self.spawned}.log"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "REDIS_URL": self.redis_url,
               "FAKE": self.fake.url}
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "responder", "run", "--config", str(self.config), "--port", str(port),
                cwd=str(self.root), env=env, stdout=out, stderr=out, start_new_session=True)
        replica = Replica(proc, port, log)
        self.replicas.append(replica)
        await self._ready(replica)
        return replica

    async def _ready(self, replica: Replica, within: float = 60) -> None:
        assert self.http is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if replica.proc.returncode is not None:
                raise RuntimeError(f"replica exited with {replica.proc.returncode}: {replica.log.read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with self.http.get(f"http://127.0.0.1:{replica.port}/readyz") as reply:
                    if reply.status == 200:
                        return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"replica on port {replica.port} not ready after {within} s")

    async def trial(self, n: int, mode: str = "in-flight", *, respawn: bool = True, kill_delay: float = 0.0,
                    within: float = 30) -> Trial:
        """One webhook, one SIGKILL (`kill_delay` s after the slow call arrived, in-flight mode); `respawn`
        starts a replacement, ready before this returns."""
        assert self.http is not None
        name = f"g{self.index}-t{n}"
        result = Trial(name, mode)
        replacement: asyncio.Task[Replica] | None = None
        try:
            entry = self.replicas[n % len(self.replicas)]
            async with self.http.post(f"http://127.0.0.1:{entry.port}/hooks/alertmanager",
                                      data=json.dumps(alert(name)),
                                      headers={"Content-Type": "application/json"}) as reply:
                assert reply.status == 202, await reply.text()
            slow = await self.fake.arrival("slow", name, within)
            run_id = f"{slow.incident}-chaos-main"
            record = await self.runs.step_record(run_id, "slow")
            assert record is not None and record["status"] == "running", record
            result.victim = record["owner"]
            victim = next(r for r in self.replicas if r.pid == owner_pid(result.victim))
            if mode == "after-response":
                answered = self.fake.answered.setdefault(name, asyncio.Event())
                await asyncio.wait_for(answered.wait(), self.fake.hold + within)
            elif kill_delay:  # still in flight: the fake holds the call for `hold` seconds
                await asyncio.sleep(min(kill_delay, 0.8 * self.fake.hold) - (time.monotonic() - slow.at))
            victim.proc.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            self.replicas.remove(victim)
            await victim.proc.wait()
            if respawn:  # the next trial again has `size` replicas
                replacement = asyncio.create_task(self.spawn())

            deadline = killed_at + within
            run: dict[str, Any] | None = None
            while time.monotonic() < deadline:
                run = await self.runs.get(run_id)
                if run and run["owner"] != result.victim and result.takeover_s is None:
                    result.takeover_s = time.monotonic() - killed_at
                if run and run["status"] != "running":
                    break
                await asyncio.sleep(0.01)
            assert run is not None
            result.run_status, result.survivor = run["status"], run["owner"]
            result.completed = run["status"] == "completed" and run["owner"] != result.victim
            slow_record = await self.runs.step_record(run_id, "slow") or {}
            after_record = await self.runs.step_record(run_id, "after") or {}
            result.slow_status = slow_record.get("status")
            result.after_by_survivor = after_record.get("owner") not in (None, result.victim)
            after = [a for a in self.fake.arrivals if a.step == "after" and a.trial == name]
            if after and after[0].at >= killed_at:
                result.next_step_s = after[0].at - killed_at
            if replacement is not None:
                await replacement
                replacement = None
            await asyncio.sleep(0.3)  # time for a late duplicate to show up before counting
            result.counts = {step: self.fake.count(step, name) for step in STEPS}
        except Exception as exc:  # a failed trial is reported with the others, never stops the run
            result.error = f"{exc.__class__.__name__}: {exc}"
            result.counts = {step: self.fake.count(step, name) for step in STEPS}
            if replacement is not None:
                with contextlib.suppress(Exception):
                    await replacement
        return result


async def run_trials(root: Path, redis_url: str, *, trials: int, groups: int, hold: float = 1.0,
                     modes: tuple[str, ...] = ("in-flight",), lease: str = "1s",
                     kill_delays: tuple[float, ...] = (0.0,)) -> list[Trial]:
    """`trials` trials spread over `groups` groups running side by side; trial i has mode modes[i % len]
    and, in flight, kill_delays[i % len]."""
    fake = CountingFake(hold)
    await fake.server.start_server()
    try:
        async def one_group(g: int) -> list[Trial]:
            mine = list(range(g, trials, groups))
            async with Group(g, root, redis_url, fake, lease=lease) as group:
                return [await group.trial(i, modes[i % len(modes)], respawn=i != mine[-1],
                                          kill_delay=kill_delays[i % len(kill_delays)]) for i in mine]

        per_group = await asyncio.gather(*(one_group(g) for g in range(groups)))
    finally:
        await fake.server.close()
    return sorted((t for ts in per_group for t in ts), key=lambda t: int(t.name.rsplit("-t", 1)[1]))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
