"""create_app(): the aiohttp application — resources in cleanup contexts, routes, no logic."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from responder.api.errors import error_middleware, security_headers
from responder.api.health import setup_health_routes
from responder.api.incidents import setup_incident_routes
from responder.api.openapi import setup_openapi_routes
from responder.api.postmortem import setup_postmortem_routes
from responder.api.probes import setup_probe_routes
from responder.api.silences import setup_silence_routes
from responder.api.status_page import setup_status_routes
from responder.chatops.slack_routes import setup_chatops_routes
from responder.clock import Clock, SystemClock
from responder.config.loader import LoadedConfig, secret_values
from responder.ingest.routes import setup_ingest_routes
from responder.keys import CLOCK, CONFIG, HTTP, METRICS, REDIS, SERVICES
from responder.logs import get_logger
from responder.metrics import Metrics
from responder.observability import init_sentry, shutdown_sentry
from responder.services import Services
from responder.store import redis as store_redis
from responder.ui import setup_ui_routes

__all__ = ["create_app"]

log = get_logger(__name__)

EMBEDDED_WARNING = ("EMBEDDED MODE: no REDIS_URL is set, so state lives in this process only. Incidents, rule "
                    "timers and playbook runs are NOT durable and are lost on restart; replicas cannot share work. "
                    "Set REDIS_URL for production.")


def create_app(loaded: LoadedConfig, *, env: Mapping[str, str] | None = None, clock: Clock | None = None,
               embedded_server: Any = None, background: bool = True,
               consumer_name: str | None = None) -> web.Application:
    """Build the app. `background=False` leaves the consumer and tick loops to the caller (tests)."""
    env = dict(os.environ if env is None else env)
    cfg = loaded.config
    # compressed request bodies are refused (415) by the middleware, never inflated by the HTTP parser
    app = web.Application(client_max_size=cfg.server.max_body_bytes, handler_args={"auto_decompress": False},
                          middlewares=[security_headers, error_middleware])
    app[CONFIG] = loaded
    app[CLOCK] = clock or SystemClock()
    app[METRICS] = Metrics()
    redis_url = env.get("REDIS_URL") or cfg.redis.url or None
    name = consumer_name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    async def sentry_ctx(app: web.Application) -> AsyncIterator[None]:
        dsn = env.get("SENTRY_DSN")
        if dsn:  # inside the running loop, as the asyncio integration needs
            init_sentry(dsn, environment=env.get("SENTRY_ENVIRONMENT"), secrets=lambda: secret_values(cfg))
        yield
        if dsn:
            shutdown_sentry()

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        if not redis_url:
            log.warning(EMBEDDED_WARNING)
        async with store_redis.connect(
            redis_url, server=embedded_server, socket_timeout=cfg.redis.socket_timeout.total_seconds(),
            connect_timeout=cfg.redis.connect_timeout.total_seconds(), retries=cfg.redis.retries,
            max_connections=cfg.redis.max_connections,
        ) as client:
            app[REDIS] = client
            yield

    async def http_ctx(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                         headers={"User-Agent": "responder"}) as session:
            app[HTTP] = session
            yield

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with _services(app, loaded, name, background=background, external=bool(redis_url)):
            yield

    async def probes_ctx(app: web.Application) -> AsyncIterator[None]:
        # the probe schedule (APScheduler, started inside the running loop) and the probes' own HTTP pool
        async with app[SERVICES].probes.running(schedule=background):
            yield

    app.cleanup_ctx.extend([sentry_ctx, redis_ctx, http_ctx, services_ctx, probes_ctx])
    setup_ingest_routes(app)
    setup_incident_routes(app)
    setup_postmortem_routes(app)
    setup_ui_routes(app)
    setup_status_routes(app)
    setup_probe_routes(app)
    setup_silence_routes(app)
    setup_chatops_routes(app)
    setup_health_routes(app)
    setup_openapi_routes(app)
    return app


@contextlib.asynccontextmanager
async def _services(app: web.Application, loaded: LoadedConfig, name: str, *, background: bool,
                    external: bool) -> AsyncIterator[None]:
    """Build the services, start the consumer and tick loops, and stop them (and runs in flight) after."""
    services = Services.build(loaded, app[REDIS], app[HTTP], app[CLOCK], app[METRICS], consumer_name=name,
                              embedded=not external)
    app[SERVICES] = services
    for source, adapter in services.adapters.items():
        if not adapter.verifies:
            log.warning("webhooks are accepted without verification", source=source,
                        hint=f"configure ingest.{source} in responder.yaml")
    for provider, reason in sorted(services.providers_missing.items()):
        log.info("provider not configured: its steps will be skipped", provider=provider, reason=reason)
    tasks: list[asyncio.Task[None]] = []
    if services.slack_sync is not None:
        services.slack_sync.start()
    if services.pagerduty_sync is not None:
        services.pagerduty_sync.start()
    if background:
        await services.events.ensure_group(services.keys.engine_group)
        tasks = [asyncio.create_task(services.consumer.run(), name="engine-consumer"),
                 asyncio.create_task(services.consumer.run_ticks(), name="engine-tick")]
    log.info("responder started", rules=len(loaded.rules), playbooks=len(loaded.playbooks),
             redis="external" if external else "embedded", consumer=name)
    try:
        yield
    finally:
        await services.chatops.close()  # commands and clicks in flight first: they may start runs
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in list(services.runner.tasks):
            task.cancel()
        await asyncio.gather(*services.runner.tasks, return_exceptions=True)
        if services.pagerduty_sync is not None:  # before Slack: its timeline notes are threaded there
            await services.pagerduty_sync.close()
        if services.slack_sync is not None:
            await services.slack_sync.close()
        for built in [*services.runner.providers.values(), *services.runner.planners.values()]:
            await built.aclose()
