"""GET /api/v1/incidents/{id}/postmortem.md (read token): the incident's postmortem draft in Markdown."""

from __future__ import annotations

from aiohttp import web

from responder.api.incidents import require_token
from responder.errors import PayloadError
from responder.incidents.postmortem import incident_runs, postmortem_markdown
from responder.incidents.service import IncidentNotFound
from responder.keys import CLOCK, CONFIG, SERVICES

__all__ = ["postmortem_response", "setup_postmortem_routes"]


async def postmortem_response(app: web.Application, incident_id: str) -> web.Response:
    services = app[SERVICES]
    try:
        incident = await services.incidents.get(incident_id)
    except IncidentNotFound:
        raise PayloadError(f"no incident {incident_id!r}", field="id", status=404) from None
    timeline = await services.incidents.store.timeline(incident_id)
    runs = await incident_runs(services.runs, app[CONFIG].playbooks, incident_id)
    text = postmortem_markdown(incident, timeline, runs, app[CLOCK].now())
    filename = f"incident-{''.join(c for c in incident_id if c.isalnum() or c in '-_')}-postmortem.md"
    return web.Response(text=text, content_type="text/markdown", charset="utf-8",
                        headers={"Content-Disposition": f'inline; filename="{filename}"',
                                 "Cache-Control": "no-store"})


async def get_postmortem(request: web.Request) -> web.Response:
    require_token(request, "read")
    return await postmortem_response(request.app, request.match_info["id"])


def setup_postmortem_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/incidents/{id}/postmortem.md", get_postmortem)
