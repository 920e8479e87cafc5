"""Redis clients: a real server with explicit timeouts and retries, or the embedded fakeredis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import fakeredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from responder.errors import StoreUnavailable

__all__ = ["Redis", "RedisError", "StoreUnavailable", "connect", "embedded_server", "ping"]

Redis = aioredis.Redis


def embedded_server() -> Any:
    """One in-process server; every client of the embedded mode must share it."""
    return fakeredis.FakeServer()


def _real(url: str, *, socket_timeout: float, connect_timeout: float, retries: int, max_connections: int) -> Redis:
    # redis-py 8 from_url() gets zero retries by default and a 5 s socket timeout: both set here on purpose.
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=connect_timeout + socket_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
        decode_responses=True,
    )
    return aioredis.Redis(connection_pool=pool)


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
    if url:
        client = _real(url, socket_timeout=socket_timeout, connect_timeout=connect_timeout,
                       retries=retries, max_connections=max_connections)
    else:
        client = fakeredis.FakeAsyncRedis(server=server or embedded_server(), decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()
        if url:  # a client built on an explicit pool does not close that pool itself
            await client.connection_pool.disconnect()


async def ping(client: Redis) -> bool:
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
