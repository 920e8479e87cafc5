"""HTTP API for incidents: list, detail with timeline and playbook runs, acknowledge, resolve, unfreeze, run."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import SecretStr

from responder.api.errors import read_json_object
from responder.errors import IngestError, PayloadError
from responder.incidents.model import IncidentState
from responder.incidents.service import IncidentNotFound
from responder.incidents.transitions import IllegalTransition
from responder.ingest.base import constant_time_equal
from responder.keys import CONFIG, SERVICES

__all__ = ["require_token", "setup_incident_routes"]


def require_token(request: web.Request, scope: str) -> str:
    """Check the bearer token for `scope` (read|write); returns the actor name for the timeline."""
    tokens = request.app[CONFIG].config.server.api_tokens
    if scope == "read" and tokens.read is None:
        return "anonymous"
    if scope == "write" and tokens.write is None:
        raise IngestError("writes are disabled: set server.api_tokens.write in responder.yaml", "Authorization", 401)
    accepted: list[SecretStr] = [t for t in (tokens.write, tokens.read if scope == "read" else None) if t]
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise IngestError("missing bearer token", "Authorization", 401)
    given = header[7:].strip()
    if not any(constant_time_equal(given, token.get_secret_value()) for token in accepted):
        raise IngestError("invalid bearer token", "Authorization", 401)
    return "api"


async def list_incidents(request: web.Request) -> web.Response:
    require_token(request, "read")
    state_text = request.query.get("state")
    state = None
    if state_text:
        try:
            state = IncidentState(state_text)
        except ValueError:
            raise PayloadError(f"unknown state {state_text!r} (one of: {', '.join(s.value for s in IncidentState)})",
                               field="state") from None
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), 1000)
    except ValueError:
        raise PayloadError("limit must be a whole number", field="limit") from None
    incidents = await request.app[SERVICES].incidents.store.list(state, limit)
    return web.json_response({"incidents": [i.model_dump(mode="json") for i in incidents]})


async def _runs(request: web.Request, incident_id: str) -> list[dict[str, Any]]:
    services = request.app[SERVICES]
    out = []
    for run_id in await services.runs.for_incident(incident_id):
        run = await services.runs.get(run_id)
        if run is None:
            continue
        playbook = services.runner.playbooks.get(run["playbook"])  # chatops.* playbooks live only there
        steps = []
        if playbook:
            for step in playbook.all_steps():
                names = [step.name]
                if step.repeat_every is not None:
                    count = await services.runs.repeat_count(run_id, step.name)
                    names += [f"{step.name} (repeat {i})" for i in range(1, count + 1)]
                for name in names:
                    record = await services.runs.step_record(run_id, name)
                    if record:
                        steps.append(record)
        run.pop("event", None)
        out.append({**run, "steps": steps})
    return out


async def get_incident(request: web.Request) -> web.Response:
    require_token(request, "read")
    incident_id = request.match_info["id"]
    services = request.app[SERVICES]
    try:
        incident = await services.incidents.get(incident_id)
    except IncidentNotFound:
        raise PayloadError(f"no incident {incident_id!r}", field="id", status=404) from None
    timeline = await services.incidents.store.timeline(incident_id)
    return web.json_response({**incident.model_dump(mode="json"),
                              "timeline": [e.model_dump(mode="json") for e in timeline],
                              "runs": await _runs(request, incident_id)})


async def change_incident(request: web.Request) -> web.Response:
    actor = require_token(request, "write")
    body = await read_json_object(request)
    who = body.get("actor")
    if who is not None and not isinstance(who, str):
        raise PayloadError("actor must be a string", field="actor")
    actor = f"user:{who}" if who else actor
    incident_id = request.match_info["id"]
    service = request.app[SERVICES].incidents
    try:
        if request.match_info["action"] == "ack":
            incident = await service.acknowledge(incident_id, actor)
        elif request.match_info["action"] == "unfreeze":
            incident = await service.unfreeze_automation(incident_id, actor)
        else:
            note = body.get("note", "")
            if not isinstance(note, str):
                raise PayloadError("note must be a string", field="note")
            incident = await service.resolve(incident_id, actor, note)
    except IncidentNotFound:
        raise PayloadError(f"no incident {incident_id!r}", field="id", status=404) from None
    except IllegalTransition as exc:
        raise PayloadError(str(exc), field="state", status=409) from None
    return web.json_response(incident.model_dump(mode="json"))


async def run_playbook(request: web.Request) -> web.Response:
    """Start a playbook for an incident by hand: {"playbook": id, "dry_run": bool, "actor": name}."""
    actor = require_token(request, "write")
    body = await read_json_object(request)
    playbook = body.get("playbook")
    if not isinstance(playbook, str) or not playbook:
        raise PayloadError("playbook is required (a playbook id)", field="playbook")
    if playbook not in request.app[CONFIG].playbooks:
        known = ", ".join(sorted(request.app[CONFIG].playbooks)) or "none"
        raise PayloadError(f"no playbook {playbook!r} (known: {known})", field="playbook", status=404)
    dry_run = body.get("dry_run", None)
    if dry_run is not None and not isinstance(dry_run, bool):
        raise PayloadError("dry_run must be true or false", field="dry_run")
    who = body.get("actor")
    if who is not None and not isinstance(who, str):
        raise PayloadError("actor must be a string", field="actor")
    services = request.app[SERVICES]
    incident_id = request.match_info["id"]
    try:
        incident = await services.incidents.get(incident_id)
    except IncidentNotFound:
        raise PayloadError(f"no incident {incident_id!r}", field="id", status=404) from None
    if not incident.state.is_open and not dry_run:
        raise PayloadError("the incident is resolved: only a dry run is possible", field="state", status=409)
    run_id = await services.runner.start(incident, playbook, None, phase="manual", dry_run=dry_run,
                                         actor=f"user:{who}" if who else actor)
    return web.json_response({"run_id": run_id, "dry_run": bool(dry_run)}, status=202)


def setup_incident_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/incidents", list_incidents)
    app.router.add_get("/api/v1/incidents/{id}", get_incident)
    app.router.add_post("/api/v1/incidents/{id}/{action:ack|resolve|unfreeze}", change_incident)
    app.router.add_post("/api/v1/incidents/{id}/run", run_playbook)
