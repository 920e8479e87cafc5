"""HTTP API for silences: list, detail with the firings each one held back, create, expire.

    GET    /api/v1/silences[?state=active,scheduled,expired|all]   read token; default active and scheduled
    GET    /api/v1/silences/{id}                                  read token; plus `suppressed_events`
    POST   /api/v1/silences                                       write token; SilenceSpec as JSON -> 201
    DELETE /api/v1/silences/{id}                                  write token; ends it now -> 200
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from responder.api.errors import read_json_object
from responder.api.incidents import require_token
from responder.engine.silences import SilenceError, SilenceNotFound, SilenceReadOnly
from responder.errors import PayloadError
from responder.keys import SERVICES

__all__ = ["setup_silence_routes"]

_STATES = ("active", "scheduled", "expired")


def _who(body: dict[str, Any], name: str, default: str) -> str:
    who = body.get(name)
    if who is not None and (not isinstance(who, str) or not who.strip()):
        raise PayloadError(f"{name} must be a non-empty string", field=name, status=422)
    return f"user:{who.strip()}" if who else default


async def list_silences(request: web.Request) -> web.Response:
    require_token(request, "read")
    text = request.query.get("state", "active,scheduled")
    states = _STATES if text == "all" else tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in states if s not in _STATES]
    if unknown or not states:
        raise PayloadError(f"unknown state {(unknown or [text])[0]!r} (one of: {', '.join(_STATES)}, all)",
                           field="state")
    service = request.app[SERVICES].silences
    silences = await service.list_silences(states)
    counts = await service.hit_counts([s.id for s in silences])
    return web.json_response({"silences": [service.view(s, counts.get(s.id, 0)) for s in silences]})


async def get_silence(request: web.Request) -> web.Response:
    require_token(request, "read")
    service = request.app[SERVICES].silences
    silence_id = request.match_info["id"]
    silence = await service.get(silence_id)
    if silence is None:
        raise PayloadError(f"no silence {silence_id!r}", field="id", status=404)
    counts = await service.hit_counts([silence.id])
    return web.json_response({**service.view(silence, counts.get(silence.id, 0)),
                              "suppressed_events": await service.hits(silence.id)})


async def create_silence(request: web.Request) -> web.Response:
    actor = require_token(request, "write")
    body = await read_json_object(request, required=True)
    created_by = _who(body, "created_by", actor)
    service = request.app[SERVICES].silences
    try:
        silence = await service.create(body, created_by)
    except SilenceError as exc:
        raise PayloadError(exc.message, field=exc.field, status=422) from None
    return web.json_response(service.view(silence, 0), status=201)


async def expire_silence(request: web.Request) -> web.Response:
    actor = require_token(request, "write")
    body = await read_json_object(request, required=False)
    unknown = sorted(set(body) - {"actor"})
    if unknown:
        raise PayloadError("unknown field", field=unknown[0], status=422)
    actor = _who(body, "actor", actor)
    service = request.app[SERVICES].silences
    silence_id = request.match_info["id"]
    try:
        silence = await service.expire(silence_id, actor)
    except SilenceNotFound:
        raise PayloadError(f"no silence {silence_id!r}", field="id", status=404) from None
    except SilenceReadOnly as exc:
        raise PayloadError(exc.message, field="id", status=409) from None
    counts = await service.hit_counts([silence.id])
    return web.json_response(service.view(silence, counts.get(silence.id, 0)))


def setup_silence_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/silences", list_silences)
    app.router.add_post("/api/v1/silences", create_silence)
    app.router.add_get("/api/v1/silences/{id}", get_silence)
    app.router.add_delete("/api/v1/silences/{id}", expire_silence)
