"""/healthz (the process is alive) and /readyz (Redis reachable and config loaded)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from responder.heartbeat import evaluation_age
from responder.keys import CONFIG, METRICS, REDIS, SERVICES
from responder.store.redis import RedisError, ping

__all__ = ["setup_health_routes"]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """ready (200); degraded (200: Redis is unreachable or the spool is being replayed, but webhooks are still
    accepted into the outage spool, so the load balancer must keep sending them); not ready (503)."""
    redis_ok = await ping(request.app[REDIS])
    config_ok = request.app.get(CONFIG) is not None
    checks: dict[str, Any] = {"redis": "ok" if redis_ok else "unreachable", "config": "ok" if config_ok else "missing"}
    services = request.app.get(SERVICES)
    spool = services.intake.spool if services is not None else None
    spool_room = False
    if spool is not None:
        spool_room = not spool.full
        checks["spool"] = {"state": "full" if spool.full else "holding" if spool.active else "empty",
                           "backlog": spool.backlog,
                           "bytes": spool.bytes, "max_bytes": spool.max_bytes}
    if not config_ok:
        status = "not ready"
    elif redis_ok and not (spool is not None and spool.active):
        status = "ready"
    elif spool_room:
        status = "degraded"
    else:
        status = "not ready"
    return web.json_response({"status": status, "checks": checks}, status=503 if status == "not ready" else 200)


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    spool = request.app[SERVICES].intake.spool
    if spool is not None:
        registry.spool_backlog.set(spool.backlog)
        registry.spool_bytes.set(spool.bytes)
    consumer = request.app[SERVICES].consumer  # the dead-man switch's view: how long since the engine evaluated
    registry.last_evaluation_age.set(evaluation_age(consumer, consumer.clock.now()))
    last = consumer.last_evaluation
    registry.last_evaluation_timestamp.set(last.timestamp() if last is not None else 0)
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
