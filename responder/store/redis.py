"""Redis clients: a real server with explicit timeouts and retries, or the embedded fakeredis.

`REDIS_URL` forms:
- `redis://[[user]:password@]host:port[/db]` (and `rediss://`): one server;
- `redis+sentinel://[[user]:password@]host1:port1[,host2:port2...]/service_name[/db]` (and
  `rediss+sentinel://`): the primary of `service_name` as the Sentinels name it. The password is the data
  nodes'; `?sentinel_password=...` authenticates to the Sentinels. After a failover the client drops its
  connections to the old primary as soon as a Sentinel reports the new one (checked every second), so no
  write lands on a demoted primary that has not noticed yet;
- `redis+cluster://[[user]:password@]host:port[,host:port...]` (and `rediss+cluster://`): a Redis Cluster,
  found from any of these seed nodes. Every key carries a hash tag per domain (responder.store.keys), so each
  script and MULTI/EXEC touches a single slot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ClusterDownError,
    ReadOnlyError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from responder.errors import ConfigError, StoreUnavailable
from responder.logs import get_logger

__all__ = ["Redis", "RedisError", "RedisUrl", "StoreUnavailable", "connect", "embedded_server", "parse_redis_url",
           "ping", "store_unreachable"]

log = get_logger(__name__)

Redis = aioredis.Redis

#: how often a Sentinel client asks who the primary is (a failover is noticed within this)
SENTINEL_WATCH_SECONDS = 1.0


def embedded_server() -> Any:
    """One in-process server; every client of the embedded mode must share it."""
    import fakeredis  # only the embedded mode needs it (and it takes a while to import)

    return fakeredis.FakeServer()


@dataclass(frozen=True)
class RedisUrl:
    """A parsed REDIS_URL: kind is "single", "sentinel" or "cluster"."""

    kind: str
    url: str
    nodes: list[tuple[str, int]] = field(default_factory=list)
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    sentinel_password: str | None = None


def _nodes(netloc: str, url: str) -> list[tuple[str, int]]:
    hosts = netloc.rpartition("@")[2]
    out = []
    for part in hosts.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError([f"REDIS_URL {_redacted(url)!r}: expected host:port, got {part!r}"])
        out.append((host.strip("[]"), int(port)))
    return out


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def parse_redis_url(url: str) -> RedisUrl:
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        return RedisUrl("single", url)
    base, _, kind = scheme.partition("+")
    if base not in ("redis", "rediss") or kind not in ("sentinel", "cluster"):
        raise ConfigError([f"REDIS_URL {_redacted(url)!r}: the scheme must be redis, rediss, redis+sentinel or "
                           "redis+cluster (rediss+... with TLS)"])
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    userinfo = netloc.rpartition("@")[0] if "@" in netloc else ""
    username, _, password = userinfo.partition(":") if ":" in userinfo else (userinfo, "", "")
    nodes = _nodes(netloc, url)
    user, secret, tls = unquote(username) or None, unquote(password) or None, base == "rediss"
    segments = [s for s in path.split("/") if s]
    if kind == "cluster":
        if segments and segments != ["0"]:
            raise ConfigError([f"REDIS_URL {_redacted(url)!r}: a Redis Cluster has only database 0"])
        return RedisUrl("cluster", url, nodes, username=user, password=secret, tls=tls)
    if not segments or len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
        raise ConfigError([f"REDIS_URL {_redacted(url)!r}: expected redis+sentinel://host:port[,host:port]/"
                           "service_name[/db]"])
    sentinel_password = parse_qs(query).get("sentinel_password", [""])[0] or None
    return RedisUrl("sentinel", url, nodes, service=unquote(segments[0]),
                    db=int(segments[1]) if len(segments) == 2 else 0, username=user, password=secret, tls=tls,
                    sentinel_password=sentinel_password)


class _BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The primary's pool, waiting for a free connection (like the single-server pool) instead of failing."""


@dataclass
class _Options:
    socket_timeout: float
    connect_timeout: float
    retries: int
    max_connections: int

    def retry(self) -> Retry:
        return Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), self.retries)

    def common(self) -> dict[str, Any]:
        return {"socket_timeout": self.socket_timeout, "socket_connect_timeout": self.connect_timeout,
                "retry": self.retry(), "retry_on_error": [RedisConnectionError, RedisTimeoutError],
                "decode_responses": True}


def _single(url: str, opts: _Options) -> Redis:
    # redis-py 8 from_url() gets zero retries by default and a 5 s socket timeout: both set here on purpose.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=opts.max_connections, timeout=opts.connect_timeout + opts.socket_timeout,
        health_check_interval=30, **opts.common())
    return aioredis.Redis(connection_pool=pool)


def _cluster(parsed: RedisUrl, opts: _Options) -> Redis:
    client = RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],
                          username=parsed.username, password=parsed.password, ssl=parsed.tls,
                          max_connections=opts.max_connections, **opts.common())
    # RedisCluster offers the same commands as Redis for single-slot work (every key here has a hash tag)
    return cast(Redis, client)


def _sentinel(parsed: RedisUrl, opts: _Options) -> tuple[Sentinel, Redis]:
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": min(opts.socket_timeout, 2.0),
                                       "socket_connect_timeout": opts.connect_timeout, "decode_responses": True}
    if parsed.sentinel_password:
        sentinel_kwargs["password"] = parsed.sentinel_password
    if parsed.tls:
        sentinel_kwargs["ssl"] = True
    sentinel = Sentinel(parsed.nodes, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    client: Redis = sentinel.master_for(
        parsed.service, connection_pool_class=_BlockingSentinelPool, db=parsed.db, username=parsed.username,
        password=parsed.password, ssl=parsed.tls, max_connections=opts.max_connections,
        timeout=opts.connect_timeout + opts.socket_timeout, health_check_interval=30, **opts.common())
    return sentinel, client


async def _watch_primary(sentinel: Sentinel, service: str, pool: SentinelConnectionPool) -> None:
    """Move every connection to the new primary once the Sentinels name one.

    redis-py re-resolves the primary only when it opens a connection, so after a `SENTINEL FAILOVER` (the old
    primary stays up and writable for ~10 s until it is turned into a replica) pooled connections would keep
    writing to the old primary, and those writes would be lost. Idle connections are closed at once; those in
    use finish their command and are closed when they return to the pool."""
    known: tuple[str, int] | None = None
    while True:
        try:
            host, port = await sentinel.discover_master(service)
            address: tuple[str, int] | None = (str(host), int(port))
        except (RedisError, OSError):
            address = None  # no agreed primary right now (a failover in progress): keep the last one
        if address is not None and address != known:
            if known is not None:
                log.warning("redis primary changed", service=service, old=f"{known[0]}:{known[1]}",
                            new=f"{address[0]}:{address[1]}")
                for connection in list(getattr(pool, "_in_use_connections", ())):
                    connection.mark_for_reconnect()
                with contextlib.suppress(RedisError, OSError):
                    await pool.disconnect(inuse_connections=False)
            known = address
        await asyncio.sleep(SENTINEL_WATCH_SECONDS)


@asynccontextmanager
async def connect(
    url: str | None,
    *,
    server: Any = None,
    socket_timeout: float = 5.0,
    connect_timeout: float = 2.0,
    retries: int = 3,
    max_connections: int = 64,
) -> AsyncIterator[Redis]:
    """Yield a client for `url`, or for the embedded `server` when url is empty; close it after."""
    opts = _Options(socket_timeout, connect_timeout, retries, max_connections)
    parsed = parse_redis_url(url) if url else None
    sentinel: Sentinel | None = None
    watcher: asyncio.Task[None] | None = None
    client: Redis
    if parsed is None:
        import fakeredis

        client = fakeredis.FakeAsyncRedis(server=server or embedded_server(), decode_responses=True)
    elif parsed.kind == "cluster":
        client = _cluster(parsed, opts)
    elif parsed.kind == "sentinel":
        sentinel, client = _sentinel(parsed, opts)
        pool = cast(SentinelConnectionPool, client.connection_pool)
        watcher = asyncio.create_task(_watch_primary(sentinel, parsed.service, pool),
                                      name="redis-sentinel-watch")
    else:
        client = _single(parsed.url, opts)
    try:
        yield client
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await client.aclose()
        if parsed is not None and parsed.kind != "cluster":
            # a client built on an explicit pool does not close that pool itself
            await client.connection_pool.disconnect()
        if sentinel is not None:
            await sentinel.aclose()


async def ping(client: Redis) -> bool:
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False


def store_unreachable(exc: BaseException) -> bool:
    """True for the failures a spool is for: Redis cannot be reached or cannot take writes right now.

    Authentication, script and data errors are not outages: spooling them would only delay the same error.
    """
    if isinstance(exc, (AuthenticationError, AuthorizationError)):
        return False
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ReadOnlyError, ClusterDownError,
                            TryAgainError, OSError, asyncio.TimeoutError))
