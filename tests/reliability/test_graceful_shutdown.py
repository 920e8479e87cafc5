"""Graceful shutdown (SIGTERM): stop listening, finish the step in hand or hand the run back, exit in time.

Two replicas on one Redis with the default 30 s run lease: a run handed back at shutdown is resumed by the
other replica at once (its next tick), not after the lease would have lapsed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from responder.app import create_app
from responder.config.loader import load_config
from responder.keys import SERVICES
from responder.services import Services
from tests.conftest import Sink, free_port, write_config
from tests.reliability.pipeline import alert

ROOT = Path(__file__).resolve().parents[2]

RULES = """
rules:
  - id: service-down
    match: {source: alertmanager, name: ServiceDown}
    group_by: [service]
    playbook: two-steps
"""

PLAYBOOKS = """
playbooks:
  - id: two-steps
    steps:
      - name: first
        action: http.request
        timeout: 30s
        continue_on_failure: true
        with: {url: "${SINK}/first"}
      - name: second
        action: http.request
        with: {url: "${SINK}/second"}
"""


def config(grace: str) -> str:
    return (f"server: {{shutdown_timeout: {grace}}}\n"
            "engine: {tick: 100ms}\n"
            "ingest: {rate_limits: {per_ip: {requests: 1000000, per: 1m}}}\n")


class HoldingSink(Sink):
    """Holds /first for `hold` seconds (a slow vendor call); answers everything else at once."""

    def __init__(self, hold: float) -> None:
        super().__init__()
        self.hold = hold
        self.first_arrived = asyncio.Event()
        self.first_answered = asyncio.Event()
        self.script = self._answer

    async def _answer(self, request: web.Request) -> web.Response:
        if request.path == "/first":
            self.first_arrived.set()
            await asyncio.sleep(self.hold)
            self.first_answered.set()
        return web.json_response({"ok": True})

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r["path"] == path)


@asynccontextmanager
async def replica(root: Path, redis_url: str, sink_url: str, grace: str) -> AsyncIterator[
        tuple[TestClient[Any, Any], Services]]:
    files = {"responder.yaml": config(grace), "rules/r.yaml": RULES, "playbooks/p.yaml": PLAYBOOKS}
    loaded = load_config(write_config(root, files), env={"SINK": sink_url})
    app = create_app(loaded, env={"REDIS_URL": redis_url}, background=True)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, app[SERVICES]
    finally:
        await client.close()


async def wait_for_status(services: Services, run_id: str, status: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        doc = await services.runs.get(run_id)
        if doc is not None and doc.get("status") == status:
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} not {status} after {within} s: {await services.runs.get(run_id)}")


async def start_run(client: TestClient[Any, Any], services: Services, sink: HoldingSink) -> str:
    reply = await client.post("/hooks/alertmanager", data=json.dumps(alert("api")),
                              headers={"Content-Type": "application/json"})
    assert reply.status == 202
    await asyncio.wait_for(sink.first_arrived.wait(), 10)
    run_ids = await services.runs.for_incident((await services.incidents.store.open_id("service-down|service=api"))
                                               or "")
    assert len(run_ids) == 1
    return run_ids[0]


async def test_shutdown_finishes_the_step_in_hand_and_hands_the_run_back(tmp_path: Path, redis_url: str) -> None:
    sink = HoldingSink(hold=1.5)
    await sink.server.start_server()
    try:
        async with replica(tmp_path / "a", redis_url, sink.url, "10s") as (client_a, services_a):
            run_id = await start_run(client_a, services_a, sink)
            began = time.monotonic()
            await client_a.close()  # SIGTERM: what web.run_app does on the signal
            took = time.monotonic() - began
            assert sink.first_answered.is_set(), "the step in hand was allowed to finish"
            assert 1.0 < took < 10, took
            first = await services_a.runs.step_record(run_id, "first")
            assert first is not None and first["status"] == "ok"
            assert await services_a.runs.step_record(run_id, "second") is None, "no new step after SIGTERM"
            assert sink.count("/second") == 0
            lease = await services_a.runs.redis.zscore(services_a.keys.runs_due, run_id)
            assert lease == 0, "the lease was handed back, not left to lapse"

        handed_back = time.monotonic()
        async with replica(tmp_path / "b", redis_url, sink.url, "10s") as (_client_b, services_b):
            await wait_for_status(services_b, run_id, "completed", within=10)
            resumed_after = time.monotonic() - handed_back
        assert resumed_after < 5, f"resumed after {resumed_after:.1f} s (the run lease is 30 s)"
        assert sink.count("/first") == 1 and sink.count("/second") == 1
    finally:
        await sink.server.close()


async def test_a_step_still_running_at_the_deadline_is_cut_off_and_not_repeated(tmp_path: Path,
                                                                                redis_url: str) -> None:
    sink = HoldingSink(hold=8)
    await sink.server.start_server()
    try:
        async with replica(tmp_path / "a", redis_url, sink.url, "1s") as (client_a, services_a):
            run_id = await start_run(client_a, services_a, sink)
            began = time.monotonic()
            await client_a.close()
            took = time.monotonic() - began
            assert took < 3, f"shutdown took {took:.1f} s with a 1 s deadline"
            assert not sink.first_answered.is_set()
            assert await services_a.runs.redis.zscore(services_a.keys.runs_due, run_id) == 0

        async with replica(tmp_path / "b", redis_url, sink.url, "10s") as (_client_b, services_b):
            await wait_for_status(services_b, run_id, "completed", within=10)
            first = await services_b.runs.step_record(run_id, "first")
            assert first is not None and first["status"] == "interrupted"  # at most once: never called again
        assert sink.count("/first") == 1 and sink.count("/second") == 1
    finally:
        await sink.server.close()


async def test_sigterm_stops_the_process_within_its_deadline(tmp_path: Path, redis_url: str) -> None:
    """The real process: SIGTERM while a step is held open; it exits 0 within the deadline and stops listening."""
    sink = HoldingSink(hold=30)
    await sink.server.start_server()
    port = free_port()
    files = {"responder.yaml": config("2s"), "rules/r.yaml": RULES, "playbooks/p.yaml": PLAYBOOKS}
    path = write_config(tmp_path, files)
    env = {**os.environ, "REDIS_URL": redis_url, "SINK": sink.url, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once; the test then waits on it in a thread
            [sys.executable, "-m", "responder", "run", "--config", str(path), "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 20
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as ready:
                        if ready.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "the daemon did not start"
                await asyncio.sleep(0.1)
            async with http.post(f"http://127.0.0.1:{port}/hooks/alertmanager", json=alert("api")) as reply:
                assert reply.status == 202
            await asyncio.wait_for(sink.first_arrived.wait(), 10)
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 15)
            took = time.monotonic() - began
            output = log.read_text(errors="replace")
            assert code == 0, output[-3000:]
            assert took < 2 + 2.5, f"exited {took:.1f} s after SIGTERM with a 2 s deadline"
            assert "shutting down: finishing what is in hand" in output and "stopped" in output, output[-3000:]
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz"):
                    raise AssertionError("still listening after exit")
            except aiohttp.ClientConnectionError:
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        await sink.server.close()
