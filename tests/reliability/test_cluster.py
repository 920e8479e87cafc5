"""The daemon on a local 3-master Redis Cluster (`REDIS_URL=redis+cluster://...`)."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from responder.cli import main
from responder.errors import ConfigError
from responder.store.keys import Keys
from responder.store.redis import connect, parse_redis_url
from tests.conftest import Sink, write_config
from tests.reliability.pipeline import daemon
from tests.reliability.servers import Cluster


def slot(client: RedisCluster, key: str) -> int:
    return int(client.keyslot(key))


async def test_a_rule_fires_end_to_end_on_a_cluster(tmp_path: Path, cluster_url: str, redis_cluster: Cluster,
                                                    sink: Sink) -> None:
    async with daemon(tmp_path, cluster_url, sink.url) as app:
        assert isinstance(app.services.events.redis, RedisCluster)
        assert (await app.client.get("/readyz")).status == 200
        for service in ("api", "web", "db"):
            assert await app.send(service) == 202
        details = {s: await app.incident_for(s) for s in ("api", "web", "db")}
        assert sorted(sink.paths) == ["/notify/api", "/notify/db", "/notify/web"]
        for service, detail in details.items():
            assert detail["rule_id"] == "service-down" and detail["severity"] == "critical"
            assert detail["state"] == "mitigating" or detail["state"] == "triggered"
            assert [s["status"] for s in detail["runs"][0]["steps"]] == ["ok"]
            request = next(r for r in sink.requests if r["path"] == f"/notify/{service}")
            assert f'"incident": "{detail["id"]}"' in request["body"]
        # the same delivery again is recognised on the cluster too: no new event, no second request
        assert await app.send("api") == 202
        await asyncio.sleep(0.5)
        assert len(sink.requests) == 3
        assert await app.services.events.length() == 3

    # the data really is spread over the three masters: each domain's keys in their own slot, on its node
    client = RedisCluster.from_url(f"redis://127.0.0.1:{redis_cluster.nodes[0].port}", decode_responses=True)
    try:
        await client.initialize()
        keys = Keys()
        holders = set()
        for key in (keys.events, keys.incidents_all, keys.incident_runs(details["api"]["id"])):
            node = client.get_node_from_key(key)
            assert await client.exists(key), key
            holders.add(node.port)
        assert len(holders) > 1, "every domain landed on one master: the hash tags do not spread"
    finally:
        await client.aclose()


def test_every_key_of_a_domain_maps_to_one_slot() -> None:
    """Multi-key scripts and MULTI/EXEC pipelines touch one domain at a time: its keys must share a slot."""
    keys = Keys("responder")
    samples: list[str] = [value for name, value in vars(keys).items() if isinstance(value, str)
                          and name not in ("prefix", "engine_group")]
    samples.append(keys.audit)
    for name in dir(keys):
        method = getattr(keys, name)
        if name.startswith("_") or not callable(method):
            continue
        samples.append(method(*["x"] * len(inspect.signature(method).parameters)))
    client = RedisCluster(host="127.0.0.1", port=1)  # keyslot() is pure: no connection is made
    by_tag: dict[str, set[int]] = {}
    for key in samples:
        assert key.count("{") == 1 and key.count("}") == 1, f"{key}: one hash tag per key"
        tag = key[key.index("{"):key.index("}") + 1]
        by_tag.setdefault(tag, set()).add(slot(client, key))
    assert all(len(slots) == 1 for slots in by_tag.values()), by_tag
    assert set(by_tag) >= {"{ev}", "{eng}", "{inc}", "{pb}", "{st}", "{pr}", "{sil}"}


async def test_cross_slot_scripts_are_refused_by_the_cluster_client(cluster_url: str) -> None:
    """What the hash tags protect against: a script over two slots does not run on a cluster."""
    async with connect(cluster_url) as redis:
        script = redis.register_script("return redis.call('SET', KEYS[1], ARGV[1]) and redis.call('GET', KEYS[2])")
        assert await script(keys=["t:{a}:1", "t:{a}:2"], args=["v"]) is None
        with pytest.raises(RedisClusterException, match=r"same key slot|CROSSSLOT"):
            await script(keys=["t:{a}:1", "t:{b}:2"], args=["v"])


def test_redis_urls_are_parsed() -> None:
    cluster = parse_redis_url("redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2:7001")
    assert (cluster.kind, cluster.nodes, cluster.password, cluster.tls) == (
        "cluster", [("10.0.0.1", 7000), ("10.0.0.2", 7001)], "s3cret", False)
    sentinel = parse_redis_url("rediss+sentinel://user:pw@s1:26379,s2:26380/mymaster/2?sentinel_password=x")
    assert (sentinel.kind, sentinel.nodes, sentinel.service, sentinel.db, sentinel.username, sentinel.password,
            sentinel.tls, sentinel.sentinel_password) == (
        "sentinel", [("s1", 26379), ("s2", 26380)], "mymaster", 2, "user", "pw", True, "x")
    assert parse_redis_url("redis://localhost:6379/0").kind == "single"
    for bad, message in [("redis+sentinel://s1:26379", "service_name"), ("redis+cluster://h:1/3", "database 0"),
                         ("redis+cluster://h", "host:port"), ("memcached://h:1", "scheme"),
                         ("redis+sentinel://:pw@s1/x", "host:port")]:
        with pytest.raises(ConfigError, match=message) as caught:
            parse_redis_url(bad)
        assert "pw" not in str(caught.value).replace("host:port", "")


def test_responder_run_refuses_a_malformed_redis_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, {"responder.yaml": "{}\n"})
    monkeypatch.setenv("REDIS_URL", "redis+cluster://:hunter2@10.0.0.1")
    assert main(["run", "--config", str(config), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "REDIS_URL 'redis+cluster://:***@10.0.0.1': expected host:port" in err and "hunter2" not in err
