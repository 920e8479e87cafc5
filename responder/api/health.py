"""/healthz (the process is alive) and /readyz (Redis reachable and config loaded)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from responder.keys import CONFIG, METRICS, REDIS, SERVICES
from responder.store.redis import RedisError, ping

__all__ = ["setup_health_routes"]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    redis_ok = await ping(request.app[REDIS])
    config_ok = request.app.get(CONFIG) is not None
    body = {"status": "ready" if redis_ok and config_ok else "not ready",
            "checks": {"redis": "ok" if redis_ok else "unreachable", "config": "ok" if config_ok else "missing"}}
    return web.json_response(body, status=200 if redis_ok and config_ok else 503)


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    try:
        for state, count in (await request.app[SERVICES].incidents.store.counts()).items():
            registry.incidents.labels(state=state).set(count)
    except (OSError, RedisError):
        pass  # scrape still answers with the process's own counters
    response = web.Response(body=generate_latest(registry.registry))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def setup_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
