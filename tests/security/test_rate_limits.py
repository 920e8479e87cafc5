"""Webhook rate limits (ingest.rate_limits) on the real app and a real Redis, with the default configuration
unless a test says otherwise: 100 requests a minute per client address, refilled evenly, shared by replicas,
checked before the body is read or verified, failing open while Redis is down."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from responder.clock import FakeClock
from responder.config.loader import LoadedConfig
from responder.keys import METRICS
from responder.metrics import Metrics
from tests.conftest import PAYLOADS
from tests.reliability.servers import Node, free_ports, server_args

BODY = (PAYLOADS / "alertmanager" / "firing.json").read_bytes()
GRAFANA = (PAYLOADS / "grafana" / "firing_two_alerts.json").read_bytes()
JSON = {"Content-Type": "application/json"}
DEFAULT = {"responder.yaml": "{}\n"}  # the real defaults (make_config's own default raises the limit for tests)


async def post(client: Any, path: str = "/hooks/alertmanager", headers: dict[str, str] | None = None,
               body: bytes = BODY) -> Any:
    return await client.post(path, data=body, headers={**JSON, **(headers or {})})


async def statuses(client: Any, count: int, **kwargs: Any) -> list[int]:
    out = []
    for _ in range(count):
        response = await post(client, **kwargs)
        await response.read()
        out.append(response.status)
    return out


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def assert_limited(response: Any, field: str = "ingest.rate_limits.per_ip") -> dict[str, Any]:
    assert response.status == 429, await response.text()
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    doc: dict[str, Any] = await response.json()
    assert doc["field"] == field, doc
    assert "rate limit exceeded" in doc["error"], doc
    return doc


async def test_the_101st_webhook_in_a_minute_from_one_address_is_429(make_config: Any, make_app: Any) -> None:
    client, _ = await make_app(make_config(DEFAULT))
    assert await statuses(client, 100) == [202] * 100
    response = await post(client)
    doc = await assert_limited(response)
    assert doc["error"] == ("rate limit exceeded: more than 100 requests per 1m from 127.0.0.1 "
                            "(ingest.rate_limits.per_ip); retry in 1s")
    assert response.headers["Retry-After"] == "1"  # one token every 600 ms
    metrics = client.app[METRICS]
    assert sample(metrics, "responder_webhooks_rate_limited_total", source="alertmanager", scope="ip") == 1
    assert sample(metrics, "responder_webhooks_rejected_total", source="alertmanager", status="429") == 1
    # the other sources share the address's bucket, and the Slack routes count too
    for path in ("/hooks/sentry", "/hooks/grafana", "/hooks/uptimerobot", "/hooks/pagerduty", "/slack/commands",
                 "/slack/interactions"):
        await assert_limited(await post(client, path))
    assert sample(metrics, "responder_webhooks_rate_limited_total", source="slack", scope="ip") == 2
    # an unknown source is a 404 and takes nothing
    assert (await post(client, "/hooks/nosuch")).status == 404
    assert sample(metrics, "responder_rate_limit_local_decisions_total") == 0  # every check was Redis's


async def test_refused_before_the_body_is_verified(make_config: Any, make_app: Any) -> None:
    client, _ = await make_app(make_config({"responder.yaml": "ingest: {alertmanager: {bearer_token: s3cret-tok}}\n"}))
    # unauthenticated requests take tokens too: a flood is refused before any verification work
    assert set(await statuses(client, 100, headers={"Authorization": "Bearer wrong"})) == {401}
    await assert_limited(await post(client, headers={"Authorization": "Bearer s3cret-tok"}))
    await assert_limited(await post(client, headers={"Authorization": "Bearer wrong"}, body=b"{not json"))


async def test_tokens_come_back_evenly_over_the_minute(make_config: Any, make_app: Any, clock: FakeClock) -> None:
    client, _ = await make_app(make_config(DEFAULT))
    assert await statuses(client, 100) == [202] * 100
    await assert_limited(await post(client))
    clock.advance(0.3)
    await assert_limited(await post(client))  # half a token
    clock.advance(0.3)
    assert (await post(client)).status == 202  # 600 ms: one token
    await assert_limited(await post(client))
    clock.advance(6)
    assert await statuses(client, 11) == [202] * 10 + [429]
    clock.advance(3600)  # a quiet hour fills the bucket to its size (the burst), not beyond
    assert await statuses(client, 101) == [202] * 100 + [429]


async def test_a_burst_smaller_than_the_rate(make_config: Any, make_app: Any, clock: FakeClock) -> None:
    client, _ = await make_app(make_config({"responder.yaml":
                                            "ingest: {rate_limits: {per_ip: {requests: 60, per: 1m, burst: 5}}}\n"}))
    assert await statuses(client, 6) == [202] * 5 + [429]
    clock.advance(2)
    assert await statuses(client, 3) == [202, 202, 429]


async def test_per_source_limit_is_independent_of_the_address(make_config: Any, make_app: Any) -> None:
    client, services = await make_app(make_config({"responder.yaml": """
server: {trusted_proxies: [127.0.0.1/32]}
ingest:
  rate_limits:
    per_source: {requests: 5, per: 1m}
    sources: {grafana: {requests: 2, per: 1m}, uptimerobot: null}
"""}))

    def sender(n: int) -> dict[str, str]:
        return {"X-Forwarded-For": f"203.0.113.{n}"}

    assert [(await post(client, headers=sender(n))).status for n in range(5)] == [202] * 5
    doc = await assert_limited(await post(client, headers=sender(99)), "ingest.rate_limits.per_source")
    assert "to source 'alertmanager'" in doc["error"]
    # other sources have their own buckets: grafana its override, uptimerobot none at all
    grafana = [(await post(client, "/hooks/grafana", headers=sender(n), body=GRAFANA)).status for n in range(3)]
    assert grafana == [202, 202, 429]
    uptimerobot = [(await post(client, "/hooks/uptimerobot", headers=sender(n))).status for n in range(10)]
    assert 429 not in uptimerobot
    assert sample(services.rate_limits.metrics, "responder_webhooks_rate_limited_total", source="alertmanager",
                  scope="source") == 1


async def test_replicas_sharing_one_redis_share_the_buckets(make_config: Any, make_app: Any) -> None:
    loaded = make_config(DEFAULT)
    one, _ = await make_app(loaded, consumer_name="replica-1")
    two, _ = await make_app(loaded, consumer_name="replica-2")
    assert await statuses(one, 60) == [202] * 60
    assert await statuses(two, 40) == [202] * 40
    await assert_limited(await post(one))
    await assert_limited(await post(two))


async def test_concurrent_webhooks_are_counted_exactly(make_config: Any, make_app: Any) -> None:
    client, _ = await make_app(make_config(DEFAULT))
    responses = await asyncio.gather(*(post(client) for _ in range(130)))
    assert sorted(r.status for r in responses) == [202] * 100 + [429] * 30


async def test_forwarded_for_is_believed_only_from_trusted_proxies(make_config: Any, make_app: Any,
                                                                    clock: FakeClock) -> None:
    # the peer (127.0.0.1) is not a trusted proxy: X-Forwarded-For is ignored, every request is 127.0.0.1's
    client, _ = await make_app(make_config({"responder.yaml": "server: {trusted_proxies: [10.0.0.0/8]}\n"}))
    with capture_logs() as logs:
        assert [(await post(client, headers={"X-Forwarded-For": f"198.51.100.{n}"})).status
                for n in range(101)] == [202] * 100 + [429]
    hints = [e for e in logs if e["event"].startswith("webhooks carry a proxy's client-address header")]
    assert len(hints) == 1 and hints[0]["peer"] == "127.0.0.1"


async def test_trusted_proxy_names_the_client(make_config: Any, make_app: Any) -> None:
    proxies = "server: {trusted_proxies: '127.0.0.0/8, 10.0.0.0/8'}\n"  # one string, as from an environment variable
    client, _ = await make_app(make_config({"responder.yaml": proxies}))
    alice = {"X-Forwarded-For": "203.0.113.7"}
    assert await statuses(client, 100, headers=alice) == [202] * 100
    doc = await assert_limited(await post(client, headers=alice))
    assert "from 203.0.113.7" in doc["error"]
    # what a client writes itself is on the left of what its proxy appends: it cannot pass for someone else
    await assert_limited(await post(client, headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}))
    # ... while trusted hops (another proxy in 10/8) are skipped from the right
    await assert_limited(await post(client, headers={"X-Forwarded-For": "203.0.113.7, 10.1.2.3"}))
    assert (await post(client, headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.8, 10.1.2.3"})).status == 202
    # the proxy itself, without a header, is a client of its own
    assert (await post(client)).status == 202


async def test_fly_client_ip_header(make_config: Any, make_app: Any) -> None:
    client, _ = await make_app(make_config({"responder.yaml": """
server: {trusted_proxies: ["0.0.0.0/0", "::/0"], client_ip_header: Fly-Client-IP}
ingest: {rate_limits: {per_ip: {requests: 2, per: 1m}}}
"""}))
    fly = {"Fly-Client-IP": "2001:db8:1:2::7", "X-Forwarded-For": "203.0.113.9"}
    assert await statuses(client, 2, headers=fly) == [202, 202]
    doc = await assert_limited(await post(client, headers=fly))
    assert "from 2001:db8:1:2::/64" in doc["error"]  # IPv6 clients count per /64
    await assert_limited(await post(client, headers={"Fly-Client-IP": "2001:db8:1:2:ffff::1"}))
    assert (await post(client, headers={"Fly-Client-IP": "2001:db8:1:3::7"})).status == 202


async def test_exempt_addresses_are_never_limited(make_config: Any, make_app: Any) -> None:
    client, _ = await make_app(make_config({"responder.yaml": """
server: {trusted_proxies: [127.0.0.1/32]}
ingest: {rate_limits: {exempt: [192.0.2.0/24], per_ip: {requests: 3, per: 1h}}}
"""}))
    assert await statuses(client, 20, headers={"X-Forwarded-For": "192.0.2.44"}) == [202] * 20
    assert await statuses(client, 4, headers={"X-Forwarded-For": "198.51.100.4"}) == [202] * 3 + [429]


async def test_disabled(make_config: Any, make_app: Any) -> None:
    client, _ = await make_app(make_config({"responder.yaml": "ingest: {rate_limits: {enabled: false}}\n"}))
    assert await statuses(client, 120) == [202] * 120


async def test_redis_down_fails_open(make_config: Any, make_app: Any, tmp_path: Path) -> None:
    """Redis stops: the buckets are kept in process from what Redis last said, nothing turns into a 5xx or a 429
    for everyone, and the outage is logged once."""
    port = free_ports(1)[0]
    node = Node(port, tmp_path / "redis", server_args(port)).start()
    try:
        loaded: LoadedConfig = make_config({"responder.yaml": "server: {trusted_proxies: [127.0.0.1/32]}\n"})
        client, services = await make_app(loaded, env={"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
        busy = {"X-Forwarded-For": "203.0.113.50"}
        assert await statuses(client, 100, headers=busy) == [202] * 100
        node.kill(signal.SIGKILL)
        with capture_logs() as logs:
            await assert_limited(await post(client, headers=busy))  # still over its limit, decided in process
            others = [(await post(client, headers={"X-Forwarded-For": f"198.51.100.{n % 50}"})).status
                      for n in range(150)]
        assert 429 not in others and all(s < 500 for s in others), others
        assert services.rate_limits.buckets.degraded
        outage = [e for e in logs if e["event"] == "rate limits decided in process: Redis did not answer"]
        assert len(outage) == 1, [e["event"] for e in logs]
        assert sample(services.rate_limits.metrics, "responder_rate_limit_local_decisions_total") >= 151
    finally:
        node.kill()
