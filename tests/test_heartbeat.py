"""The dead-man switch: responder's heartbeat goes out only while its engine evaluates, once per interval across
replicas, in the Healthchecks, Slack or JSON form; its URL never shows up in logs, errors or /metrics; /metrics
tells the age of the last evaluation. Real redis-server, a local HTTP sink as the far end."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from responder.app import create_app
from responder.clock import FakeClock
from responder.config.loader import secret_values
from responder.errors import ConfigError
from responder.heartbeat import Heartbeat
from responder.keys import HEARTBEAT, SERVICES
from responder.logs import configure_logging
from tests.conftest import Sink, free_port, write_config
from tests.reliability.servers import Node, server_args

CHECK = "5f0c2d9e-4b7a-4c1e-9d3f-6a2b8e1c7d40"  # a Healthchecks check id: whoever knows it can ping
HEADER = "heartbeat-header-secret-77f1"


def config(url: str, **extra: Any) -> dict[str, str]:
    fields = {"url": url, "interval": "1m", "max_evaluation_age": "30s", **extra}
    body = ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items())
    return {"responder.yaml": f"engine: {{tick: 1s}}\nheartbeat: {{{body}}}\n"}


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def started(make_app: Any, loaded: Any, name: str = "replica-a") -> tuple[TestClient[Any, Any], Heartbeat]:
    client, _services = await make_app(loaded, consumer_name=name)
    return client, client.app[HEARTBEAT]


# -- when it is sent --------------------------------------------------------------------------------

async def test_sent_once_per_interval_while_the_engine_evaluates(make_config: Any, make_app: Any, sink: Sink,
                                                                 clock: FakeClock) -> None:
    client, heartbeat = await started(make_app, make_config(config(f"{sink.url}/ping/{CHECK}")))
    consumer = client.app[SERVICES].consumer

    await consumer.tick()
    assert await heartbeat.ping() == "sent"
    assert await heartbeat.ping() == "claimed_elsewhere"  # the same interval again: already sent
    assert [(r["method"], r["path"]) for r in sink.requests] == [("GET", f"/ping/{CHECK}")]

    for _ in range(3):  # the next intervals, the engine ticking every second meanwhile
        for _ in range(60):
            clock.advance(1)
            await consumer.tick()
        assert await heartbeat.ping() == "sent"
    assert len(sink.requests) == 4

    metrics = await (await client.get("/metrics")).text()
    assert 'responder_heartbeats_total{outcome="sent"} 4.0' in metrics
    assert 'responder_heartbeats_total{outcome="claimed_elsewhere"} 1.0' in metrics


async def test_withheld_while_evaluation_is_stale_and_resumed_after(make_config: Any, make_app: Any, sink: Sink,
                                                                   clock: FakeClock) -> None:
    client, heartbeat = await started(make_app, make_config(config(f"{sink.url}/ping/{CHECK}")))
    consumer = client.app[SERVICES].consumer

    assert await heartbeat.ping() == "stale"  # never evaluated yet: nothing proves the engine works
    await consumer.tick()
    clock.advance(29)
    assert await heartbeat.ping() == "sent"  # 29 s old: fresh
    clock.advance(31)  # the tick loop stopped 60 s ago
    assert await heartbeat.ping() == "stale"
    clock.advance(60)
    assert await heartbeat.ping() == "stale"
    assert len(sink.requests) == 1

    await consumer.tick()  # evaluating again
    assert await heartbeat.ping() == "sent"
    assert len(sink.requests) == 2
    metrics = await (await client.get("/metrics")).text()
    assert 'responder_heartbeats_total{outcome="stale"} 3.0' in metrics


async def test_a_handled_event_counts_as_evaluation(make_config: Any, make_app: Any, sink: Sink,
                                                    clock: FakeClock) -> None:
    client, heartbeat = await started(make_app, make_config(config(f"{sink.url}/ping/{CHECK}")))
    services = client.app[SERVICES]
    reply = await client.post("/hooks/alertmanager", json={
        "version": "4", "status": "firing", "receiver": "responder", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://am", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "labels": {"alertname": "Disk", "service": "db"}, "annotations": {},
                    "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "f1"}]})
    assert reply.status == 202
    assert services.consumer.last_evaluation is None
    assert await services.consumer.poll(block_ms=0) == 1
    assert services.consumer.last_evaluation == clock.now()
    assert await heartbeat.ping() == "sent"


async def test_two_replicas_on_one_redis_send_one_heartbeat_per_interval(make_config: Any, make_app: Any,
                                                                          sink: Sink, clock: FakeClock) -> None:
    loaded = make_config(config(f"{sink.url}/ping/{CHECK}"))
    a, beat_a = await started(make_app, loaded, "replica-a")
    b, beat_b = await started(make_app, loaded, "replica-b")
    outcomes = []
    for _ in range(5):
        await a.app[SERVICES].consumer.tick()
        await b.app[SERVICES].consumer.tick()
        outcomes.append(sorted(await asyncio.gather(beat_a.ping(), beat_b.ping())))
        clock.advance(60)
    assert outcomes == [["claimed_elsewhere", "sent"]] * 5
    assert len(sink.requests) == 5

    # b's engine stops: a alone keeps proving evaluation, still once per interval
    for _ in range(3):
        await a.app[SERVICES].consumer.tick()
        assert sorted(await asyncio.gather(beat_a.ping(), beat_b.ping())) == ["sent", "stale"]
        clock.advance(60)
    assert len(sink.requests) == 8


# -- on_stale: fail, and the formats ----------------------------------------------------------------

async def test_on_stale_fail_pings_the_healthchecks_fail_url_once_when_no_replica_evaluates(
        make_config: Any, make_app: Any, sink: Sink, clock: FakeClock) -> None:
    loaded = make_config(config(f"{sink.url}/ping/{CHECK}?rid=r1", on_stale="fail", method="POST"))
    a, beat_a = await started(make_app, loaded, "replica-a")
    _b, beat_b = await started(make_app, loaded, "replica-b")

    # a evaluates, b does not: a's ping covers the interval, b's halfway look reports nothing
    await a.app[SERVICES].consumer.tick()
    slot = beat_a.slot()
    assert await beat_a.ping() == "sent"
    assert await beat_b.ping() == "stale"
    clock.advance(30)
    assert await beat_b.report_stale(slot) == "claimed_elsewhere"
    assert [(r["method"], r["path"]) for r in sink.requests] == [("POST", f"/ping/{CHECK}")]
    assert "replica-a is evaluating" in sink.requests[0]["body"]

    # neither evaluates: the first halfway look claims the interval and reports, once
    clock.advance(60)
    slot = beat_a.slot()
    assert [await beat_a.ping(), await beat_b.ping()] == ["stale", "stale"]
    clock.advance(30)
    assert sorted([await beat_a.report_stale(slot), await beat_b.report_stale(slot)]) == \
        ["claimed_elsewhere", "fail_sent"]
    fail = sink.requests[-1]
    assert (fail["method"], fail["path"]) == ("POST", f"/ping/{CHECK}/fail")
    assert "has not evaluated for" in fail["body"]
    assert len(sink.requests) == 2

    # evaluating again by the halfway look: that look is an ordinary heartbeat
    clock.advance(30)
    slot = beat_a.slot()
    assert await beat_a.ping() == "stale"
    await a.app[SERVICES].consumer.tick()
    clock.advance(20)
    assert await beat_a.report_stale(slot) == "sent"
    assert sink.requests[-1]["path"] == f"/ping/{CHECK}"


async def test_slack_and_json_formats(make_config: Any, make_app: Any, sink: Sink, clock: FakeClock) -> None:
    slack = make_config(config(f"{sink.url}/services/T0/B0/XYZ", format="slack", on_stale="fail"))
    client, heartbeat = await started(make_app, slack)
    await client.app[SERVICES].consumer.tick()
    assert await heartbeat.ping() == "sent"
    clock.advance(120)
    assert await heartbeat.report_stale(heartbeat.slot()) == "fail_sent"
    ok, stale = sink.requests
    assert (ok["method"], ok["path"], ok["headers"]["Content-Type"]) == ("POST", "/services/T0/B0/XYZ",
                                                                        "application/json")
    assert json.loads(ok["body"]) == {"text": "responder replica-a is evaluating (last evaluation 0.0s ago)"}
    assert json.loads(stale["body"])["text"].startswith(":rotating_light: responder replica-a has not evaluated "
                                                         "for 120s (limit 30s)")

    sink.requests.clear()
    loaded = make_config(config(f"{sink.url}/dead-man", format="json", headers={"Authorization": HEADER}))
    client, heartbeat = await started(make_app, loaded, "replica-j")
    clock.advance(60)  # the next interval (the Slack replica shares this Redis)
    await client.app[SERVICES].consumer.tick()
    clock.advance(5)
    assert await heartbeat.ping() == "sent"
    (request,) = sink.requests
    assert request["headers"]["Authorization"] == HEADER
    body = json.loads(request["body"])
    assert body["status"] == "ok" and body["replica"] == "replica-j" and body["source"] == "responder"
    assert body["last_evaluation_age_seconds"] == 5.0
    assert body["last_evaluation"] == "2026-01-01T00:03:00+00:00"


async def test_a_refusing_or_unreachable_far_end_is_counted_not_raised(make_config: Any, make_app: Any,
                                                                        sink: Sink, clock: FakeClock) -> None:
    client, heartbeat = await started(make_app, make_config(config(f"{sink.url}/ping/{CHECK}", timeout="1s")))
    await client.app[SERVICES].consumer.tick()
    sink.status = 500
    assert await heartbeat.ping() == "error"

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(text="late")

    sink.script = slow
    clock.advance(60)
    await client.app[SERVICES].consumer.tick()
    assert await heartbeat.ping() == "error"  # the 1 s timeout
    metrics = await (await client.get("/metrics")).text()
    assert 'responder_heartbeats_total{outcome="error"} 2.0' in metrics


# -- /metrics ---------------------------------------------------------------------------------------

async def test_metrics_show_the_age_of_the_last_evaluation(make_config: Any, make_app: Any, clock: FakeClock) -> None:
    client, _services = await make_app(make_config({}))  # no heartbeat configured: the gauges are there anyway
    assert client.app.get(HEARTBEAT) is None
    consumer = client.app[SERVICES].consumer

    clock.advance(7)  # not evaluated yet: the age counts from the start
    text = await (await client.get("/metrics")).text()
    assert metric(text, "responder_last_evaluation_age_seconds") == 7.0
    assert metric(text, "responder_last_evaluation_timestamp_seconds") == 0.0

    await consumer.tick()
    text = await (await client.get("/metrics")).text()
    assert metric(text, "responder_last_evaluation_age_seconds") == 0.0
    assert metric(text, "responder_last_evaluation_timestamp_seconds") == clock.now().timestamp()
    stamp = clock.now().timestamp()

    for seconds in (1, 30, 600):  # evaluation stopped: the age grows, the timestamp stays
        clock.advance(seconds)
        text = await (await client.get("/metrics")).text()
        assert metric(text, "responder_last_evaluation_timestamp_seconds") == stamp
    assert metric(text, "responder_last_evaluation_age_seconds") == 631.0


# -- with the real loop: Redis stops, the heartbeat stops, the task lives on -----------------------

async def test_heartbeat_loop_stops_with_redis_and_resumes_after(make_config: Any, sink: Sink,
                                                                 tmp_path: Path) -> None:
    port = free_port()
    node = Node(port, tmp_path / "redis", server_args(port, "--appendonly", "yes")).start()
    yaml = (f"engine: {{tick: 100ms}}\n"
            f"redis: {{socket_timeout: 500ms, connect_timeout: 200ms, retries: 0}}\n"
            f"heartbeat: {{url: '{sink.url}/ping/{CHECK}', interval: 1s, timeout: 1s, max_evaluation_age: 1500ms}}\n")
    app = create_app(make_config({"responder.yaml": yaml}), env={"REDIS_URL": f"redis://127.0.0.1:{port}/0"},
                     background=True, consumer_name="looping")
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        task = next(t for t in asyncio.all_tasks() if t.get_name() == "heartbeat")

        async def pings_within(seconds: float, at_least: int) -> int:
            before = len(sink.requests)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if len(sink.requests) - before >= at_least:
                    break
                await asyncio.sleep(0.05)
            return len(sink.requests) - before

        assert await pings_within(8, 2) >= 2  # every second while evaluating
        assert {r["path"] for r in sink.requests} == {f"/ping/{CHECK}"}

        node.kill()  # the engine can no longer evaluate
        await asyncio.sleep(2.2)  # pings may go on until the last evaluation is 1.5 s old
        assert await pings_within(2.5, 1) == 0  # ... and then they stop
        assert not task.done()  # the loop survives Redis being away
        text = await (await client.get("/metrics")).text()
        assert metric(text, "responder_last_evaluation_age_seconds") > 2.0
        assert metric(text, 'responder_heartbeats_total{outcome="stale"}') >= 2

        node.start()  # back, with its data (the consumer group survives in the AOF)
        assert await pings_within(15, 1) == 1
        assert not task.done()
    finally:
        await client.close()
        node.kill()
    assert task.cancelled()  # stopped with the app


# -- secrets ----------------------------------------------------------------------------------------

@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    """Everything logged, through responder's JSON logging WITHOUT redaction: proves nothing tries to log it."""
    buffer = io.StringIO()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging("DEBUG", stream=buffer)
    yield buffer
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_the_url_and_headers_are_never_logged_or_shown(make_config: Any, make_app: Any, sink: Sink,
                                                             clock: FakeClock, log_buffer: io.StringIO) -> None:
    closed = free_port()
    loaded = make_config(config(f"{sink.url}/ping/{CHECK}", on_stale="fail", headers={"X-Token": HEADER}))
    assert {f"{sink.url}/ping/{CHECK}", HEADER} <= set(secret_values(loaded.config))  # redacted if ever logged
    client, heartbeat = await started(make_app, loaded)
    consumer = client.app[SERVICES].consumer
    assert await heartbeat.ping() == "stale"
    assert await heartbeat.report_stale(heartbeat.slot()) == "fail_sent"
    clock.advance(60)
    await consumer.tick()
    assert await heartbeat.ping() == "sent"
    sink.status = 503
    clock.advance(60)
    await consumer.tick()
    assert await heartbeat.ping() == "error"

    unreachable = make_config(config(f"http://127.0.0.1:{closed}/ping/{CHECK}"))
    client2, heartbeat2 = await started(make_app, unreachable, "replica-u")
    clock.advance(60)
    await client2.app[SERVICES].consumer.tick()
    assert await heartbeat2.ping() == "error"  # connection refused: aiohttp's message would quote the URL

    # every line but the sink's own access log (the far end logs the paths it serves, as Healthchecks does)
    lines = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    logged = "\n".join(json.dumps(line) for line in lines if line.get("logger") != "aiohttp.access")
    assert "heartbeat refused" in logged and "heartbeat not delivered" in logged and "withheld" in logged
    assert "reported that the engine is not evaluating" in logged
    assert CHECK not in logged and HEADER not in logged
    for reply in [await client.get("/metrics"), await client.get("/readyz"), await client.get("/api/v1/openapi.json")]:
        assert CHECK not in await reply.text()


def test_config_errors_name_the_field_and_never_quote_the_url(tmp_path: Path) -> None:
    def problems(yaml: str) -> str:
        with pytest.raises(ConfigError) as caught:
            from responder.config.loader import load_config

            load_config(write_config(tmp_path, {"responder.yaml": yaml}), env={"HB": f"ftp://hc/{CHECK}"})
        return str(caught.value)

    text = problems("heartbeat: {url: '${HB}'}\n")
    assert "heartbeat.url" in text and "http:// or https://" in text and CHECK not in text
    text = problems(f"heartbeat: {{url: 'https://hooks.slack.com/services/{CHECK}'}}\n")
    assert "set heartbeat.format: slack" in text and CHECK not in text
    text = problems(f"heartbeat: {{url: 'https://hc-ping.com/{CHECK}', interval: 30s, timeout: 1m}}\n")
    assert "heartbeat.timeout (1m) must not exceed heartbeat.interval (30s)" in text
    text = problems(f"heartbeat: {{url: 'https://x/{CHECK}', format: json, method: GET}}\n")
    assert "use POST" in text
    text = problems(f"heartbeat: {{url: 'https://x/{CHECK}', interval: 500ms, colour: red}}\n")
    assert "heartbeat.interval: must be at least 1s" in text and "heartbeat.colour: unknown field" in text
    text = problems(f"engine: {{tick: 2m}}\nheartbeat: {{url: 'https://x/{CHECK}', max_evaluation_age: 1m}}\n")
    assert "heartbeat.max_evaluation_age: must exceed engine.tick" in text

    from responder.config.loader import load_config

    off = load_config(write_config(tmp_path, {"responder.yaml": "heartbeat: {url: '${HB:-}'}\n"}), env={})
    assert not off.config.heartbeat.enabled  # an unset ${VAR:-}: no heartbeat
