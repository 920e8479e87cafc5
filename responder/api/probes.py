"""HTTP API for probes: GET /api/v1/probes and /api/v1/probes/{id} (last result, last N, uptime 24 h / 7 d)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from responder.api.incidents import require_token
from responder.errors import PayloadError
from responder.keys import SERVICES
from responder.probes.model import Probe
from responder.store.probes import ProbeHistory

__all__ = ["setup_probe_routes"]

LIST_RESULTS = 20  # results per probe in the list; the detail gives every kept result


def _limit(request: web.Request, default: int, cap: int) -> int:
    text = request.query.get("results")
    if text is None:
        return default
    try:
        return min(max(int(text), 0), cap)
    except ValueError:
        raise PayloadError("results must be a whole number", field="results") from None


def _document(request: web.Request, probe: Probe, history: ProbeHistory) -> dict[str, Any]:
    service = request.app[SERVICES].probes
    return {**service.describe(probe), "last": history.results[0] if history.results else None,
            "results": history.results, "uptime_24h": history.uptime_24h, "uptime_7d": history.uptime_7d}


async def list_probes(request: web.Request) -> web.Response:
    require_token(request, "read")
    service = request.app[SERVICES].probes
    keep = service.settings.keep_results
    # the last result is always read, even when fewer (or no) results are asked for
    limit = _limit(request, min(LIST_RESULTS, keep), keep)
    probes = list(service.definitions.values())
    histories = await service.history([p.id for p in probes], max(limit, 1))
    out = []
    for probe in probes:
        doc = _document(request, probe, histories[probe.id])
        doc["results"] = doc["results"][:limit]
        out.append(doc)
    return web.json_response({"probes": out})


async def get_probe(request: web.Request) -> web.Response:
    require_token(request, "read")
    service = request.app[SERVICES].probes
    probe_id = request.match_info["id"]
    probe = service.definitions.get(probe_id)
    if probe is None:
        raise PayloadError(f"no probe {probe_id!r}", field="id", status=404)
    keep = service.settings.keep_results
    limit = _limit(request, keep, keep)
    history = (await service.history([probe_id], max(limit, 1)))[probe_id]
    doc = _document(request, probe, history)
    doc["results"] = doc["results"][:limit]
    return web.json_response(doc)


def setup_probe_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/probes", list_probes)
    app.router.add_get("/api/v1/probes/{id}", get_probe)
