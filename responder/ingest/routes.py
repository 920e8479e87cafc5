"""POST /hooks/{source}: verify -> parse -> append to the durable stream (or, while Redis is unreachable, to the
outage spool) -> 202 with the event ids."""

from __future__ import annotations

import math

from aiohttp import web

from responder.api.errors import json_error
from responder.errors import IngestError, PayloadError
from responder.ingest.base import IngestRequest
from responder.ingest.spool import SpoolFull
from responder.keys import CLOCK, METRICS, SERVICES
from responder.logs import get_logger
from responder.store.events import BacklogFull

__all__ = ["setup_ingest_routes"]

log = get_logger(__name__)


async def receive(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    metrics = request.app[METRICS]
    source = request.match_info["source"]
    adapter = services.adapters.get(source)
    if adapter is None:
        raise PayloadError(f"unknown source {source!r} (known: {', '.join(sorted(services.adapters))})",
                           field="source", status=404)
    if request.method == "GET" and not adapter.accepts_get:
        raise web.HTTPMethodNotAllowed("GET", ["POST"])
    await services.rate_limits.check(request, source)  # before the body is read: a flood costs little
    try:
        body = await request.read()
        if body and request.content_type not in adapter.content_types:
            raise PayloadError(f"unsupported Content-Type {request.content_type!r}; expected "
                               f"{' or '.join(adapter.content_types)}", field="Content-Type", status=415)
        ingest_request = IngestRequest(body=body, headers=request.headers, query=dict(request.query),
                                       method=request.method, content_type=request.content_type,
                                       path_token=request.match_info.get("token"),
                                       received_at=request.app[CLOCK].now())
        adapter.verify(ingest_request)
        events = adapter.parse(ingest_request)
    except (IngestError, web.HTTPException) as exc:  # counted here, rendered by the error middleware
        metrics.webhooks_rejected.labels(source=source, status=str(exc.status)).inc()
        raise
    try:
        appended, spooled = await services.intake.accept(events)
    except SpoolFull as exc:  # Redis is down and the spool holds all it may: the sender keeps it and retries
        metrics.webhooks_rejected.labels(source=source, status="503").inc()
        return json_error(503, "the state store is unreachable and the outage spool is full; retry later", "spool",
                          headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))})
    except BacklogFull as exc:  # accepting more would let the stream's cap trim events not yet handled
        metrics.webhooks_rejected.labels(source=source, status="503").inc()
        log.warning("webhook refused: the engine is behind", source=source, backlog=exc.backlog)
        return json_error(503, f"{exc}; retry later", "engine.stream_maxlen", headers={"Retry-After": "5"})
    fresh = [a.event_id for a in appended if not a.duplicate]
    duplicates = [a.event_id for a in appended if a.duplicate]
    metrics.events_received.labels(source=source).inc(len(fresh))
    metrics.events_duplicate.labels(source=source).inc(len(duplicates))
    if spooled:
        metrics.events_spooled.labels(source=source).inc(len(fresh))
    # debug: at thousands of webhooks/s an info line each costs more than the append (the counters above count them)
    log.debug("webhook accepted", source=source, events=len(fresh), duplicates=len(duplicates), spooled=spooled)
    reply: dict[str, object] = {"accepted": len(fresh), "event_ids": [a.event_id for a in appended],
                                "duplicates": duplicates}
    if spooled:  # on disk, not yet in Redis: duplicates are dropped when the spool is replayed
        reply["spooled"] = True
    return web.json_response(reply, status=202)


def setup_ingest_routes(app: web.Application) -> None:
    for path in ("/hooks/{source}", "/hooks/{source}/{token}"):
        app.router.add_post(path, receive)
        app.router.add_get(path, receive, allow_head=False)
