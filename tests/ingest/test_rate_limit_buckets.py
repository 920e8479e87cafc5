"""The pieces behind ingest.rate_limits: the token buckets in Redis (one batched script per round trip, the
in-process fallback), finding the client's address behind proxies, and the configuration's errors."""

from __future__ import annotations

import asyncio
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from structlog.testing import capture_logs

from responder.clientip import ClientAddress, parse_address
from responder.clock import FakeClock, to_ms
from responder.config.loader import load_config
from responder.errors import ConfigError
from responder.store import redis as store_redis
from responder.store.keys import Keys
from responder.store.ratelimit import Limit, TokenBuckets
from tests.conftest import free_port, write_config

PER_MINUTE_100 = Limit.of(100, 60)


def buckets_on(client: Any, clock: FakeClock, **kwargs: Any) -> TokenBuckets:
    return TokenBuckets(client, now_ms=lambda: to_ms(clock.now()), **kwargs)


async def test_concurrent_checks_share_script_calls(redis_url: str, clock: FakeClock) -> None:
    """300 checks at once: decided in arrival order, in a handful of script calls; on a Cluster too (the {rl} tag
    keeps every bucket in one slot: a CROSSSLOT error would show as decisions taken in process)."""
    single = not redis_url.startswith("redis+cluster://")
    keys = Keys("t")
    admin = sync_redis.Redis.from_url(redis_url) if single else None
    if admin is not None:
        admin.config_resetstat()
    async with store_redis.connect(redis_url) as client:
        buckets = buckets_on(client, clock)
        ip = keys.rate_limit_ip("203.0.113.1")
        source = keys.rate_limit_source("sentry")
        decisions = await asyncio.gather(*(buckets.take([(ip, PER_MINUTE_100), (source, Limit.of(1000, 60))])
                                           for _ in range(300)))
        assert not any(d.local for d in decisions) and not buckets.degraded
        assert [d.allowed for d in decisions] == [True] * 100 + [False] * 200  # in arrival order
        assert [d.remaining for d in decisions[:3]] == [99, 98, 97]
        assert {d.refused_by for d in decisions[100:]} == {0}  # the address's bucket refused
        assert {d.retry_after for d in decisions[100:]} == {0.6}
        # refused requests took nothing from the source's bucket
        assert float(str(await client.hget(source, "t"))) == 900
    if admin is not None:
        stats = admin.info("commandstats")
        admin.close()
        calls = sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
        assert 1 <= calls <= 10, stats  # 300 checks in a handful of round trips, not 300


async def test_buckets_expire_once_full_again(redis_url: str, clock: FakeClock) -> None:
    async with store_redis.connect(redis_url) as client:
        buckets = buckets_on(client, clock)
        key = Keys("t").rate_limit_ip("203.0.113.2")
        for _ in range(3):
            assert (await buckets.take([(key, PER_MINUTE_100)])).allowed
        # 3 tokens short: full again after 1.8 s; the key outlives that by a second, then costs no memory
        assert 1800 < await client.pttl(key) <= 2800


async def test_local_fallback_when_redis_is_unreachable(clock: FakeClock) -> None:
    port = free_port()  # nothing listens here
    async with store_redis.connect(f"redis://127.0.0.1:{port}/0", retries=0, connect_timeout=0.2) as client:
        buckets = buckets_on(client, clock, timeout=0.5, retry_every=60)
        key = "t:{rl}:ip:203.0.113.3"
        with capture_logs() as logs:
            decisions = [await buckets.take([(key, Limit.of(5, 60))]) for _ in range(7)]
        assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
        assert all(d.local for d in decisions)
        assert decisions[-1].retry_after == 12.0
        assert buckets.degraded
        assert [e["event"] for e in logs] == ["rate limits decided in process: Redis did not answer"]
        clock.advance(12)
        assert (await buckets.take([(key, Limit.of(5, 60))])).allowed


async def test_outage_and_recovery_are_logged_once_each(redis_url: str, clock: FakeClock) -> None:
    """A Redis that answers again takes over from the in-process buckets at the next attempt."""
    async with store_redis.connect(redis_url) as client:
        now = [0.0]
        buckets = buckets_on(client, clock, retry_every=1.0, monotonic=lambda: now[0])
        key = Keys("t").rate_limit_ip("203.0.113.4")
        with capture_logs() as logs:
            buckets._failed(ConnectionError("gone"))  # as a failed call does
            assert (await buckets.take([(key, PER_MINUTE_100)])).local
            now[0] = 2.0
            decision = await buckets.take([(key, PER_MINUTE_100)])
        assert not decision.local and not buckets.degraded
        assert [e["event"] for e in logs] == ["rate limits decided in process: Redis did not answer",
                                             "rate limits back in Redis"]


@pytest.mark.parametrize(("peer", "headers", "expected"), [
    ("198.51.100.1", {"X-Forwarded-For": "203.0.113.1"}, "198.51.100.1"),  # not a trusted proxy
    ("10.0.0.5", {}, "10.0.0.5"),  # a trusted proxy without the header is itself the client
    ("10.0.0.5", {"X-Forwarded-For": "203.0.113.1"}, "203.0.113.1"),
    ("10.0.0.5", {"X-Forwarded-For": "6.6.6.6, 203.0.113.1, 10.0.0.9"}, "203.0.113.1"),
    ("10.0.0.5", {"X-Forwarded-For": "10.0.0.7, 10.0.0.9"}, "10.0.0.7"),  # all trusted: the leftmost
    ("10.0.0.5", {"X-Forwarded-For": "junk, 10.0.0.9"}, "10.0.0.9"),  # nothing left of junk is believed
    ("10.0.0.5", {"X-Forwarded-For": "[2001:db8::1]:443"}, "2001:db8::1"),
    ("10.0.0.5", {"X-Forwarded-For": "203.0.113.1:5555"}, "203.0.113.1"),
    ("::ffff:10.0.0.5", {"X-Forwarded-For": "::ffff:203.0.113.1"}, "203.0.113.1"),  # IPv4-mapped
    (None, {"X-Forwarded-For": "203.0.113.1"}, None),  # a Unix socket
])
def test_client_address(peer: str | None, headers: dict[str, str], expected: str | None) -> None:
    found = ClientAddress((ip_network("10.0.0.0/8"),)).resolve(peer, headers)
    assert (str(found) if found else None) == expected


def test_single_address_headers() -> None:
    fly = ClientAddress((ip_network("0.0.0.0/0"),), header="Fly-Client-IP")
    assert str(fly.resolve("172.16.0.2", {"Fly-Client-IP": "203.0.113.9", "X-Forwarded-For": "6.6.6.6"})) == \
        "203.0.113.9"
    assert str(fly.resolve("172.16.0.2", {"Fly-Client-IP": "nonsense"})) == "172.16.0.2"
    assert parse_address('"2001:db8::2"') is not None and parse_address("") is None


@pytest.mark.parametrize(("yaml", "expected"), [
    ("ingest:\n  rate_limits:\n    per_ip: {requests: 100, per: soon}\n",
     "responder.yaml:3:34: ingest.rate_limits.per_ip.per: invalid duration 'soon'"),
    ("ingest:\n  rate_limits:\n    per_ip: {requests: 100, per: 0s}\n",
     "responder.yaml:3:34: ingest.rate_limits.per_ip.per: the period must be longer than 0s"),
    ("ingest:\n  rate_limits:\n    per_ip: {requests: 0, per: 1m}\n",
     "responder.yaml:3:24: ingest.rate_limits.per_ip.requests: Input should be greater than or equal to 1"),
    ("ingest:\n  rate_limits:\n    sources: {sentri: {requests: 5, per: 1m}}\n",
     "responder.yaml:3:5: ingest.rate_limits.sources: unknown source 'sentri' (known: alertmanager, grafana, "
     "pagerduty, sentry, uptimerobot, slack)"),
    ("ingest:\n  rate_limits:\n    exempt: [10.0.0.300/8]\n",
     "responder.yaml:3:5: ingest.rate_limits.exempt: '10.0.0.300/8' is not an address range like 10.0.0.0/8"),
    ("server:\n  trusted_proxies: [10.0.0.1/8]\n",
     "responder.yaml:2:3: server.trusted_proxies: '10.0.0.1/8' has bits set after the prefix: did you mean "
     "10.0.0.0/8?"),
    ("server:\n  trusted_proxies: [5]\n", "responder.yaml:2:3: server.trusted_proxies: 5 is not an address range"),
    ("server:\n  client_ip_header: 'X Forwarded'\n", "responder.yaml:2:21: server.client_ip_header: String should "
     "match pattern"),
])
def test_config_errors_name_the_field(tmp_path: Path, yaml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, {"responder.yaml": yaml}), env={})
    problems = [str(p) for p in caught.value.problems]
    assert any(p.startswith(expected) for p in problems), problems


def test_trusted_proxies_from_one_environment_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"responder.yaml": "server: {trusted_proxies: '${PROXIES:-}'}\n"})
    assert [str(n) for n in load_config(path, env={"PROXIES": "10.0.0.0/8, fd00::/8"}).config.server
            .trusted_proxies] == ["10.0.0.0/8", "fd00::/8"]
    assert load_config(path, env={}).config.server.trusted_proxies == []
