"""Redis stopped for 10 s while webhooks arrive at a steady rate, then started again.

Two sources (Alertmanager and UptimeRobot) each send one webhook every 50 ms, one after the other, as their
own senders would. The redis-server (AOF, fsync always) is killed with SIGKILL a few seconds in and started
again on the same port and folder 10 s later. Every webhook must be answered 202 (straight into the stream,
or into the outage spool while Redis is away), and afterwards the engine must have handled every accepted
event exactly once, each source's events in the order they were accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from responder.app import create_app
from tests.conftest import PAYLOADS
from tests.reliability.servers import Node, free_ports, missing_binaries, server_args

pytestmark = pytest.mark.skipif(bool(missing_binaries()), reason=f"needs {', '.join(missing_binaries())}")

OUTAGE_S = 10.0
BEFORE_S = 3.0
AFTER_S = 3.0
INTERVAL_S = 0.05

ALERTMANAGER = json.loads((PAYLOADS / "alertmanager/firing.json").read_text())
UPTIMEROBOT = json.loads((PAYLOADS / "uptimerobot/down.json").read_text())


def alertmanager_body(seq: int) -> bytes:
    body = copy.deepcopy(ALERTMANAGER)
    alert = body["alerts"][0]
    alert["labels"]["seq"] = str(seq)
    alert["fingerprint"] = f"{seq:016x}"
    return json.dumps(body).encode()


def uptimerobot_body(seq: int) -> bytes:
    return json.dumps({**UPTIMEROBOT, "alertDateTime": str(1_732_180_512 + seq)}).encode()


def durable_redis(root: Path) -> Node:
    """A redis-server that keeps every acknowledged write across a SIGKILL (AOF with fsync always)."""
    port = free_ports(1)[0]
    args = server_args(port, "--appendonly", "yes", "--appendfsync", "always", "--dir", str(root))
    return Node(port, root, args).start()


class Sender:
    """One source's sender: a webhook every INTERVAL_S, each after the previous one was answered."""

    def __init__(self, client: TestClient[Any, Any], source: str, make_body: Any) -> None:
        self.client = client
        self.source = source
        self.make_body = make_body
        self.accepted: list[str] = []  # event ids, in the order they were accepted
        self.statuses: Counter[int] = Counter()
        self.spooled = 0

    async def run(self, until: float) -> None:
        seq = 0
        next_at = time.monotonic()
        while time.monotonic() < until:
            seq += 1
            response = await self.client.post(f"/hooks/{self.source}", data=self.make_body(seq),
                                               headers={"Content-Type": "application/json"})
            self.statuses[response.status] += 1
            if response.status == 202:
                reply = await response.json()
                self.accepted += reply["event_ids"]
                self.spooled += bool(reply.get("spooled"))
            next_at += INTERVAL_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def handled(record: Path) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


async def test_redis_outage_loses_nothing_and_keeps_each_sources_order(tmp_path: Path, make_config: Any) -> None:
    redis = durable_redis(tmp_path / "redis")
    record = tmp_path / "handled.jsonl"
    loaded = make_config({"responder.yaml": (
        "redis: {connect_timeout: 200ms, socket_timeout: 500ms, retries: 1}\n"
        f"spool: {{dir: {tmp_path / 'spool'}}}\n"
        f"record: {{path: {record}}}\n"
        "engine: {tick: 200ms}\n"
        "ingest: {rate_limits: {per_ip: {requests: 1000000, per: 1m}}}\n")})
    app = create_app(loaded, env={"REDIS_URL": f"redis://127.0.0.1:{redis.port}/0"})
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            assert (await client.get("/readyz")).status == 200
            start = time.monotonic()
            end = start + BEFORE_S + OUTAGE_S + AFTER_S
            senders = [Sender(client, "alertmanager", alertmanager_body),
                       Sender(client, "uptimerobot", uptimerobot_body)]
            sending = [asyncio.create_task(s.run(end)) for s in senders]

            await asyncio.sleep(BEFORE_S)
            redis.kill()  # SIGKILL: a crash, not a shutdown
            await asyncio.sleep(OUTAGE_S / 2)
            ready = await client.get("/readyz")
            during = await ready.json()
            assert ready.status == 200, during  # still taking webhooks: the load balancer must keep sending them
            assert during["status"] == "degraded" and during["checks"]["redis"] == "unreachable"
            assert during["checks"]["spool"]["backlog"] > 0
            await asyncio.sleep(OUTAGE_S / 2)
            redis.start()
            await asyncio.gather(*sending)

            accepted = {s.source: s.accepted for s in senders}
            total = sum(len(ids) for ids in accepted.values())
            for sender in senders:  # every webhook was answered 202, many of them from the spool
                assert dict(sender.statuses) == {202: len(sender.accepted)}, sender.statuses
                assert sender.spooled >= OUTAGE_S / INTERVAL_S * 0.5, sender.spooled
            deadline = time.monotonic() + 60
            while len(handled(record)) < total and time.monotonic() < deadline:  # noqa: ASYNC110 - a file
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # anything handled twice would show up now

            events = handled(record)
            ids = [e["id"] for e in events]
            repeated = [i for i, n in Counter(ids).items() if n > 1]
            assert not repeated, f"{len(repeated)} events handled more than once"
            for source, sent in accepted.items():
                seen = [e["id"] for e in events if e["source"] == source]
                assert set(seen) == set(sent), f"{source}: {len(set(sent) - set(seen))} accepted events never handled"
                assert seen == sent, f"{source}: handled out of the order they were accepted"
            assert len(ids) == total

            ready = await client.get("/readyz")
            assert ready.status == 200 and (await ready.json())["status"] == "ready"
            assert not list((tmp_path / "spool").glob("slot-*.log")) or all(
                p.stat().st_size == 0 for p in (tmp_path / "spool").glob("slot-*.log"))
    finally:
        with contextlib.suppress(Exception):
            redis.kill()
