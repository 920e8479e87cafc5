"""Each probe kind against a real local server: the right status, value and reason, as an event in the stream."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import redis as sync_redis

from responder.clock import FakeClock
from responder.events import Event
from responder.probes.service import ProbeRun
from responder.services import Services
from tests.probes.conftest import HealthServer, TcpListener, TlsServer


async def tick(services: Services, clock: FakeClock, probe_id: str) -> ProbeRun:
    """One scheduled run, then on to the next slot."""
    run = await services.probes.tick(probe_id)
    assert run is not None
    clock.advance(services.probes.definitions[probe_id].every.total_seconds())
    return run


async def stream_events(services: Services) -> list[Event]:
    entries: Any = await services.events.redis.xrange(services.keys.events)
    return [Event.model_validate_json(fields["e"]) for _, fields in entries]


HTTP_PROBE = """
probes:
  - id: api-health
    http:
      url: ${HEALTH_URL}
      headers: {Authorization: "Bearer ${HEALTH_TOKEN}"}
      expect: {status: 200, json: {status: healthy, checks.database: healthy, checks.redis: healthy}}
      max_latency: 2s
    every: 30s
    timeout: 5s
    service: api
    labels: {env: production}
"""


async def test_http_health_toggles_between_ok_and_failing(make_config: Any, make_app: Any, clock: FakeClock,
                                                          health: HealthServer) -> None:
    loaded = make_config({"probes/api.yaml": HTTP_PROBE},
                         env={"HEALTH_URL": health.url, "HEALTH_TOKEN": "probe-token-123456"})
    _, services = await make_app(loaded)

    ok = await tick(services, clock, "api-health")
    assert ok.result.ok and ok.event.status == "ok"
    assert ok.event.source == "probe" and ok.event.name == "api-health" and ok.event.service == "api"
    assert ok.event.labels == {"env": "production", "service": "api"}
    assert ok.event.value is not None and 0 < ok.event.value < 2000  # latency in ms
    assert ok.event.summary.startswith("HTTP 200 in ")
    assert ok.event.delivery_id == f"probe:api-health:{ok.slot}"
    assert health.headers[0]["Authorization"] == "Bearer probe-token-123456"

    health.healthy = False
    failing = await tick(services, clock, "api-health")
    assert failing.event.status == "failing" and failing.slot == ok.slot + 1
    assert failing.event.summary == "status is 'unhealthy' (expected 'healthy')"
    assert failing.event.value is not None  # still the latency

    health.healthy, health.status = True, 503
    down = await tick(services, clock, "api-health")
    assert down.event.status == "failing" and down.event.summary == "HTTP 503 (expected 200)"

    health.status = 200
    again = await tick(services, clock, "api-health")
    assert again.event.status == "ok"

    # every result went through the same stream as the webhooks
    events = await stream_events(services)
    assert [(e.name, e.status.value) for e in events] == [("api-health", "ok"), ("api-health", "failing"),
                                                         ("api-health", "failing"), ("api-health", "ok")]
    assert len({e.fingerprint for e in events}) == 1  # one series


async def test_http_latency_limit_and_unreachable_server(make_config: Any, make_app: Any, clock: FakeClock,
                                                        health: HealthServer) -> None:
    probes = f"""
probes:
  - id: slow-health
    http: {{url: "{health.url}", max_latency: 100ms}}
    timeout: 3s
  - id: nobody-home
    http: {{url: "http://127.0.0.1:9/health"}}
"""
    _, services = await make_app(make_config({"probes/p.yaml": probes}))
    health.delay = 0.3
    slow = await tick(services, clock, "slow-health")
    assert slow.event.status == "failing" and slow.event.summary.startswith("slow: HTTP 200 in ")
    assert slow.event.value is not None and slow.event.value >= 300
    refused = await tick(services, clock, "nobody-home")
    assert refused.event.status == "failing" and not refused.result.answered
    assert "ClientConnectorError" in refused.event.summary


async def test_a_slow_probe_is_cut_at_its_timeout_and_does_not_delay_the_others(
        make_config: Any, make_app: Any, clock: FakeClock, health: HealthServer) -> None:
    slow_url = health.url.replace("/health", "/slow")
    probes = f"""
probes:
  - id: hangs
    http: {{url: "{slow_url}"}}
    timeout: 500ms
  - id: quick
    http: {{url: "{health.url}"}}
"""
    _, services = await make_app(make_config({"probes/p.yaml": probes}))
    started = time.perf_counter()
    hang_task = asyncio.create_task(services.probes.tick("hangs"))
    quick = await services.probes.tick("quick")
    quick_done = time.perf_counter() - started
    hang = await hang_task
    hang_done = time.perf_counter() - started
    assert quick is not None and quick.event.status == "ok" and quick_done < 0.4
    assert hang is not None and hang.event.status == "failing"
    assert hang.event.summary == "no answer within 0.5s" and not hang.result.answered
    assert 0.45 < hang_done < 2


async def test_tcp_listener_that_goes_away(make_config: Any, make_app: Any, clock: FakeClock,
                                           tcp_listener: TcpListener) -> None:
    probes = f"probes:\n  - id: db-port\n    tcp: {{host: 127.0.0.1, port: {tcp_listener.port}}}\n    every: 10s\n"
    _, services = await make_app(make_config({"probes/p.yaml": probes}))
    up = await tick(services, clock, "db-port")
    assert up.event.status == "ok" and up.event.value is not None and up.event.value >= 0
    assert up.event.summary.startswith(f"connected to 127.0.0.1:{tcp_listener.port} in ")
    await tcp_listener.stop()
    gone = await tick(services, clock, "db-port")
    assert gone.event.status == "failing" and gone.event.value is None and not gone.result.answered
    assert gone.event.summary.startswith(f"cannot connect to 127.0.0.1:{tcp_listener.port}: ")
    await tcp_listener.start(tcp_listener.port)  # back on the same port
    back = await tick(services, clock, "db-port")
    assert back.event.status == "ok"


async def test_redis_queue_that_grows_past_its_limit(make_config: Any, make_app: Any, clock: FakeClock,
                                                     redis_url: str) -> None:
    queue_url = redis_url.rsplit("/", 1)[0] + "/3"  # another database of the real server: the watched Redis
    probes = """
probes:
  - id: sync-worker-failed-jobs
    redis: {url: "${QUEUE_REDIS_URL}", length_of: "bull:sync-worker:failed", max: 3}
    every: 1m
    service: sync-worker
  - id: queue-redis-up
    redis: {url: "${QUEUE_REDIS_URL}"}
  - id: active-jobs
    redis: {url: "${QUEUE_REDIS_URL}", length_of: "bull:sync-worker:active", min: 1}
"""
    _, services = await make_app(make_config({"probes/p.yaml": probes}, env={"QUEUE_REDIS_URL": queue_url}))
    queue = sync_redis.Redis.from_url(queue_url)
    try:
        empty = await tick(services, clock, "sync-worker-failed-jobs")  # no key yet: BullMQ deletes empty lists
        assert empty.event.status == "ok" and empty.event.value == 0
        assert empty.event.summary == "bull:sync-worker:failed has 0 entries (missing, counted as 0)"
        values = []
        for job in range(5):
            queue.rpush("bull:sync-worker:failed", f"job-{job}")
            run = await tick(services, clock, "sync-worker-failed-jobs")
            values.append((run.event.value, run.event.status.value))
        assert values == [(1, "ok"), (2, "ok"), (3, "ok"), (4, "failing"), (5, "failing")]
        assert run.event.summary == "bull:sync-worker:failed has 5 entries (max 3)"

        # BullMQ keeps failed jobs in a sorted set: TYPE decides the command (ZCARD here)
        queue.delete("bull:sync-worker:failed")
        queue.zadd("bull:sync-worker:failed", {"a": 1, "b": 2})
        zset = await tick(services, clock, "sync-worker-failed-jobs")
        assert zset.event.value == 2 and zset.event.summary.endswith("(zset)")
        queue.set("bull:sync-worker:failed", "not a queue")
        wrong = await tick(services, clock, "sync-worker-failed-jobs")
        assert wrong.event.status == "failing" and wrong.event.summary.endswith("is a string, not a list, zset, "
                                                                                "stream or set")
        queue.xadd("bull:sync-worker:active", {"job": "1"})
        active = await tick(services, clock, "active-jobs")
        assert active.event.status == "ok" and active.event.value == 1
        queue.delete("bull:sync-worker:active")
        idle = await tick(services, clock, "active-jobs")
        assert idle.event.status == "failing" and idle.event.summary.endswith("(min 1)")

        pong = await tick(services, clock, "queue-redis-up")
        assert pong.event.status == "ok" and pong.event.summary.startswith("PONG in ")
    finally:
        queue.flushdb()
        queue.close()


async def test_redis_probe_against_a_server_that_is_not_there(make_config: Any, make_app: Any,
                                                              clock: FakeClock) -> None:
    probes = "probes:\n  - id: gone\n    redis: {url: 'redis://127.0.0.1:9/0', length_of: q, max: 1}\n"
    _, services = await make_app(make_config({"probes/p.yaml": probes}))
    run = await tick(services, clock, "gone")
    assert run.event.status == "failing" and not run.result.answered and "ConnectionError" in run.event.summary


async def test_tls_certificate_days_left(make_config: Any, make_app: Any, clock: FakeClock,
                                         tls_server: TlsServer) -> None:
    clock.set(dt.datetime.now(dt.UTC))
    await tls_server.start(days=5)
    probes = f"""
probes:
  - id: api-cert
    tls: {{host: 127.0.0.1, port: {tls_server.port}, server_name: localhost, min_days: 14,
          ca_file: "{tls_server.ca_file}"}}
    every: 1h
  - id: api-cert-relaxed
    tls: {{host: 127.0.0.1, port: {tls_server.port}, min_days: 3, ca_file: "{tls_server.ca_file}"}}
    every: 1h
  - id: api-cert-untrusted
    tls: {{host: 127.0.0.1, port: {tls_server.port}, server_name: localhost, min_days: 1}}
    every: 1h
"""
    _, services = await make_app(make_config({"probes/p.yaml": probes}))
    soon = await tick(services, clock, "api-cert")
    assert soon.event.status == "failing" and soon.event.value is not None and 4.9 < soon.event.value <= 5.0
    assert soon.event.summary == f"certificate expires in {soon.event.value:g} days (min 14)"
    assert soon.event.annotations["kind"] == "tls" and float(soon.event.annotations["latency_ms"]) > 0
    clock.set(dt.datetime.now(dt.UTC))
    relaxed = await tick(services, clock, "api-cert-relaxed")  # verified against 127.0.0.1 (the cert's IP SAN)
    assert relaxed.event.status == "ok"
    assert relaxed.event.summary == f"certificate valid for {relaxed.event.value:g} more days"
    clock.set(dt.datetime.now(dt.UTC))
    untrusted = await tick(services, clock, "api-cert-untrusted")  # the system store does not trust trustme's CA
    assert untrusted.event.status == "failing" and untrusted.event.summary.startswith("certificate not trusted: ")
    assert untrusted.event.value is not None and 4.9 < untrusted.event.value <= 5.0  # read anyway


async def test_tls_expired_certificate(make_config: Any, make_app: Any, clock: FakeClock,
                                       tls_server: TlsServer) -> None:
    clock.set(dt.datetime.now(dt.UTC))
    await tls_server.start(days=-2)
    probes = f"""
probes:
  - id: old-cert
    tls: {{host: 127.0.0.1, port: {tls_server.port}, ca_file: "{tls_server.ca_file}", min_days: 0}}
    every: 1h
  - id: old-cert-unverified
    tls: {{host: 127.0.0.1, port: {tls_server.port}, verify: false, min_days: 0}}
    every: 1h
"""
    _, services = await make_app(make_config({"probes/p.yaml": probes}))
    verified = await tick(services, clock, "old-cert")
    assert verified.event.status == "failing" and verified.event.value is not None
    assert -2.01 < verified.event.value < -1.99
    assert "certificate has expired" in verified.event.summary
    clock.set(dt.datetime.now(dt.UTC))
    unverified = await tick(services, clock, "old-cert-unverified")
    assert unverified.event.status == "failing" and unverified.event.summary.startswith("certificate expired 2")


async def test_dns_resolves_with_the_expected_address(make_config: Any, make_app: Any, clock: FakeClock) -> None:
    probes = """
probes:
  - id: localhost-a
    dns: {name: localhost, record: A, expect: 127.0.0.1}
  - id: localhost-wrong
    dns: {name: localhost, expect: [10.9.9.9]}
  - id: no-such-name
    dns: {name: no-such-host.invalid}
"""
    _, services = await make_app(make_config({"probes/p.yaml": probes}))
    good = await tick(services, clock, "localhost-a")
    assert good.event.status == "ok" and "127.0.0.1" in good.event.summary and good.event.value is not None
    wrong = await tick(services, clock, "localhost-wrong")
    assert wrong.event.status == "failing" and wrong.event.summary == "localhost A is 127.0.0.1 (expected 10.9.9.9)"
    missing = await tick(services, clock, "no-such-name")
    assert missing.event.status == "failing" and missing.event.summary.startswith("no-such-host.invalid A: ")


async def test_a_redelivered_slot_is_deduplicated(make_config: Any, make_app: Any, clock: FakeClock,
                                                  health: HealthServer, redis_url: str) -> None:
    """If a claim expired and another replica ran the same slot again, the stream keeps one event."""
    _, services = await make_app(make_config({"probes/api.yaml": HTTP_PROBE},
                                             env={"HEALTH_URL": health.url, "HEALTH_TOKEN": "x" * 8}))
    first = await services.probes.tick("api-health")
    assert first is not None and not first.duplicate
    assert await services.probes.tick("api-health") is None  # same slot: claimed already
    client = sync_redis.Redis.from_url(redis_url)
    client.delete(services.keys.probe_claim("api-health", first.slot))  # the claim lapsed
    client.close()
    again = await services.probes.tick("api-health")
    assert again is not None and again.duplicate and again.slot == first.slot
    assert await services.events.length() == 1
