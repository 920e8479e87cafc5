"""create_app(): the aiohttp application — resources in cleanup contexts, routes, no logic."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
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
from responder.heartbeat import Heartbeat
from responder.ingest.routes import setup_ingest_routes
from responder.ingest.spool import Spool, default_spool_dir
from responder.keys import CLOCK, CONFIG, HEARTBEAT, HTTP, METRICS, REDIS, SERVICES
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
        async with _services(app, loaded, name, background=background, external=bool(redis_url), env=env):
            yield

    async def probes_ctx(app: web.Application) -> AsyncIterator[None]:
        # the probe schedule (APScheduler, started inside the running loop) and the probes' own HTTP pool
        async with app[SERVICES].probes.running(schedule=background):
            yield

    async def heartbeat_ctx(app: web.Application) -> AsyncIterator[None]:
        # the dead-man switch: built whenever heartbeat.url is set, its loop runs only with `background`
        if not cfg.heartbeat.enabled:
            if cfg.heartbeat.url is not None and background:
                log.warning("HEARTBEAT OFF: heartbeat.url is empty, so nothing notices if this daemon stops evaluating",
                            hint="set it (an unset ${VAR:-} leaves it empty)")
            yield
            return
        services = app[SERVICES]
        heartbeat = Heartbeat(cfg.heartbeat, app[REDIS], services.keys, app[HTTP], app[CLOCK], app[METRICS],
                              owner=name, engine=services.consumer)
        app[HEARTBEAT] = heartbeat
        async with heartbeat.running(background=background):
            yield

    app.cleanup_ctx.extend([sentry_ctx, redis_ctx, http_ctx, services_ctx, heartbeat_ctx, probes_ctx])
    app.on_shutdown.append(_begin_shutdown)
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


def _open_spool(loaded: LoadedConfig, env: Mapping[str, str]) -> Spool | None:
    """This process's slot of the outage spool, or None (disabled, or its directory cannot be used)."""
    cfg = loaded.config.spool
    if not cfg.enabled:
        log.warning("the outage spool is disabled: while Redis is unreachable, webhooks are refused with 503")
        return None
    base = loaded.path.parent if loaded.path else Path.cwd()
    directory = (base / cfg.dir) if cfg.dir else default_spool_dir(dict(env)) / loaded.config.redis.prefix
    spool = Spool(directory, max_bytes=cfg.max_bytes, retry_after=cfg.retry_after.total_seconds())
    try:
        spool.open()
    except OSError as exc:
        log.error("the outage spool cannot be used: while Redis is unreachable, webhooks are refused with 503",
                  directory=str(directory), error=f"{exc.__class__.__name__}: {exc.strerror or exc}")
        return None
    log.info("outage spool ready", directory=str(directory), slot=spool.slot.number, max_bytes=cfg.max_bytes)
    return spool


@contextlib.asynccontextmanager
async def _services(app: web.Application, loaded: LoadedConfig, name: str, *, background: bool,
                    external: bool, env: Mapping[str, str]) -> AsyncIterator[None]:
    """Build the services, start the consumer and tick loops, and stop them (and runs in flight) after."""
    spool = _open_spool(loaded, env) if external else None  # the embedded store cannot become unreachable
    services = Services.build(loaded, app[REDIS], app[HTTP], app[CLOCK], app[METRICS], consumer_name=name,
                              embedded=not external, spool=spool)
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
    if spool is not None:  # replays whatever an outage (or a crash during one) left, whenever Redis answers
        tasks.append(asyncio.create_task(services.intake.replay_forever(), name="spool-replay"))
    if background:
        await services.events.ensure_group(services.keys.engine_group)
        tasks += [asyncio.create_task(services.consumer.run(), name="engine-consumer"),
                 asyncio.create_task(services.consumer.run_ticks(), name="engine-tick")]
    log.info("responder started", rules=len(loaded.rules), playbooks=len(loaded.playbooks),
             redis="external" if external else "embedded", consumer=name)
    try:
        yield
    finally:
        await _stop(services, tasks, spool, loaded.config.server.shutdown_timeout.total_seconds())


async def _begin_shutdown(app: web.Application) -> None:
    """on_shutdown (SIGTERM; the listening sockets are already closed): read no new events and start no new
    step while aiohttp finishes the requests in flight; the cleanup below waits for the rest."""
    services = app.get(SERVICES)
    if services is not None:
        services.shutdown_started = asyncio.get_running_loop().time()
        services.consumer.stop()
        services.runner.stopping = True
        log.info("shutting down: finishing what is in hand",
                 deadline_s=app[CONFIG].config.server.shutdown_timeout.total_seconds())


async def _stop(services: Services, tasks: list[asyncio.Task[None]], spool: Spool | None,
                grace: float) -> None:
    """Within `grace` seconds of the shutdown's start: the event and tick in hand finish, runs finish their
    step or are handed back (lease released), then everything else closes."""
    loop = asyncio.get_running_loop()
    deadline = (services.shutdown_started or loop.time()) + grace
    services.consumer.stop()
    services.runner.stopping = True
    await services.chatops.close()  # commands and clicks in flight first: they may start runs
    engine = [t for t in tasks if t.get_name() != "spool-replay"]
    for task in tasks:
        if task not in engine:
            task.cancel()  # the spool's offset only moves after an append: replay resumes where it stopped
    if engine:
        _done, late = await asyncio.wait(engine, timeout=max(0.0, deadline - loop.time()))
        for task in late:
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await services.runner.shutdown(grace=max(0.0, deadline - loop.time()))
    if services.pagerduty_sync is not None:  # before Slack: its timeline notes are threaded there
        await services.pagerduty_sync.close()
    if services.slack_sync is not None:
        await services.slack_sync.close()
    if spool is not None:
        if spool.active:
            log.warning("stopping with webhooks in the outage spool that Redis does not have yet: the next process "
                        "that opens this folder replays them", backlog=spool.backlog, directory=str(spool.directory))
        await spool.close()
    for built in [*services.runner.providers.values(), *services.runner.planners.values()]:
        await built.aclose()
    left = deadline - loop.time()
    log.info("stopped" if left >= 0 else "stopped after the shutdown deadline", over_s=round(max(0.0, -left), 3))
