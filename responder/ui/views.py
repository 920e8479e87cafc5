"""The dashboard at /ui: server-rendered pages (Jinja2, autoescaped, no JavaScript) and form actions.

    GET  /ui/incidents[?state=&severity=&service=&q=]   incidents with filters + events per minute
    GET  /ui/incidents/{id}                             timeline, playbook runs and steps, action buttons
    GET  /ui/incidents/{id}/postmortem.md               the postmortem draft (same as the API's)
    POST /ui/incidents/{id}/ack|resolve|unfreeze|run    write session (or bearer) + CSRF field
    GET  /ui/probes                                     probes with latency/status sparklines, uptime
    GET  /ui/silences[?show=all]   POST /ui/silences   POST /ui/silences/{id}/expire
    GET  /ui/login   POST /ui/login   POST /ui/logout   (see responder.ui.auth)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from multidict import MultiDictProxy

from responder.api.postmortem import postmortem_response
from responder.engine.silences import SilenceError, SilenceNotFound, SilenceReadOnly
from responder.errors import PayloadError
from responder.events import Severity
from responder.incidents.model import Incident, IncidentState
from responder.incidents.postmortem import format_span, incident_runs, is_remediation
from responder.incidents.service import IncidentNotFound
from responder.incidents.transitions import IllegalTransition
from responder.keys import CLOCK, CONFIG, REDIS, SERVICES
from responder.store.event_rate import EventRate, events_per_minute
from responder.ui.auth import (
    Access,
    access,
    check_origin,
    clean_name,
    clear_session,
    csrf_ok,
    login_scope,
    start_session,
)
from responder.ui.charts import BarChart, event_chart, short_span, sparkline

__all__ = ["CSP", "setup_ui_routes"]

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
SCAN = 500  # incidents read for the list (newest first); filters apply to these
SHOWN = 200
CHART_TTL = 10.0  # seconds the events-per-minute chart is reused
NOTICES = {"ack": "Acknowledged.", "resolve": "Resolved.", "unfreeze": "Automation unfrozen.",
           "run": "Playbook run started.", "dry-run": "Dry run started: nothing will be sent.",
           "silence": "Silence created.", "expire": "Silence expired.", "login": "Logged in.",
           "logout": "Logged out."}


def _dt(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if not isinstance(value, datetime):
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ms(value: Any) -> str:
    if not isinstance(value, int | float):
        return "—"
    return format_span(timedelta(milliseconds=value)) if value >= 1000 else f"{int(value)} ms"


def _web_url(value: Any) -> str | None:
    """Only http(s) links are rendered as links (no javascript: or data: from an alert)."""
    if not isinstance(value, str):
        return None
    return value if urlsplit(value).scheme in ("http", "https") else None


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


_ENV = Environment(loader=PackageLoader("responder.ui", "templates"), undefined=StrictUndefined,
                   autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=True,
                   lstrip_blocks=True)
_ENV.filters.update(dt=_dt, ms=_ms, web_url=_web_url, pretty=_pretty, span=format_span)


@dataclass
class _ChartCache:
    at: float = 0.0
    rate: EventRate | None = None
    extra: dict[str, Any] = field(default_factory=dict)


CHART_CACHE = web.AppKey("ui_chart_cache", _ChartCache)


def _html(request: web.Request, template: str, who: Access, status: int = 200, **context: Any) -> web.Response:
    tokens = request.app[CONFIG].config.server.api_tokens
    notice = NOTICES.get(request.query.get("done", ""))
    context.setdefault("nav", "")
    text = _ENV.get_template(template).render(
        who=who, writes_enabled=tokens.write is not None, login_needed=tokens.read is not None or
        tokens.write is not None, notice=notice, path=request.path_qs, now=request.app[CLOCK].now(), **context)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store",
                                 # not no-referrer: with it browsers send `Origin: null` on the forms' POSTs,
                                 # and the Origin check needs the real one; other sites still get nothing
                                 "Referrer-Policy": "same-origin"})


def _problem(request: web.Request, who: Access, status: int, message: str, back: str = "/ui/incidents") -> web.Response:
    return _html(request, "error.html", who, status=status, message=message, back=back, title="Error")


def _see_other(location: str) -> web.Response:
    """A 303 after a form (a plain response, so the security headers and cookies go with it)."""
    return web.Response(status=303, headers={"Location": location})


def _login_url(request: web.Request) -> str:
    return f"/ui/login?next={quote(request.path_qs, safe='')}"


def _reader(request: web.Request) -> Access:
    """The visitor, who must be allowed to read; otherwise off to the login page."""
    who = access(request)
    if not who.can_read:
        raise web.HTTPSeeOther(_login_url(request))
    return who


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """`request.post()`; a body that cannot be read as a form is a 400 naming the body."""
    try:
        return await request.post()
    except web.HTTPException:
        raise
    except (ValueError, LookupError, HttpProcessingError):
        raise PayloadError("the form body could not be read", field="body") from None


async def _writer(request: web.Request) -> tuple[Access, MultiDictProxy[Any]] | web.Response:
    """The visitor and the form of a POST action, or the page that says why it is refused."""
    who = access(request)
    if not check_origin(request):
        return _problem(request, who, 403, "This form was sent from another site: refused.")
    form = await read_form(request)
    if request.app[CONFIG].config.server.api_tokens.write is None:
        return _problem(request, who, 403, "Writes are disabled: set server.api_tokens.write in responder.yaml.")
    if not who.can_write:
        return _problem(request, who, 401 if who.scope == "none" else 403,
                        "This needs the write token: log in with it to act.")
    if not csrf_ok(request, who, str(form.get("csrf", ""))):
        return _problem(request, who, 403, "The form's CSRF token is missing or stale: reload the page and try again.")
    return who, form


# -- incidents -----------------------------------------------------------------------------------------


def _matches(incident: Incident, severity: str, service: str, text: str) -> bool:
    if severity and incident.severity.value != severity:
        return False
    if service and (incident.service or "") != service:
        return False
    if text:
        haystack = " ".join([incident.id, incident.title, incident.rule_id, incident.summary, incident.service or "",
                             incident.source or "", *incident.labels.values(), *incident.group.values()]).lower()
        return all(word in haystack for word in text.lower().split())
    return True


async def _chart(app: web.Application) -> BarChart:
    cache = app[CHART_CACHE]
    if cache.rate is None or time.monotonic() - cache.at > CHART_TTL:
        services = app[SERVICES]
        cache.rate = await events_per_minute(app[REDIS], services.keys,
                                             maxlen=app[CONFIG].config.engine.stream_maxlen)
        cache.at = time.monotonic()
    return event_chart(cache.rate)


async def incidents_page(request: web.Request) -> web.StreamResponse:
    who = _reader(request)
    query = request.query
    states = [s.value for s in IncidentState]
    severities = [s.value for s in Severity]
    state = query.get("state", "") if query.get("state", "") in states else ""
    severity = query.get("severity", "") if query.get("severity", "") in severities else ""
    service = query.get("service", "").strip()[:200]
    text = query.get("q", "").strip()[:200]
    store = request.app[SERVICES].incidents.store
    scanned = await store.list(IncidentState(state) if state else None, SCAN)
    found = [i for i in scanned if _matches(i, severity, service, text)]
    return _html(request, "incidents.html", who, title="Incidents", nav="incidents", incidents=found[:SHOWN],
                 more=max(len(found) - SHOWN, 0), scanned=len(scanned), scan_limit=SCAN, states=states,
                 severities=severities, services=sorted({i.service for i in scanned if i.service} | (
                     {service} if service else set())),
                 filters={"state": state, "severity": severity, "service": service, "q": text},
                 counts=await store.counts(), chart=await _chart(request.app), age=_age(request))


def _age(request: web.Request) -> Any:
    now = request.app[CLOCK].now()

    def age(moment: datetime | None) -> str:
        return short_span(now - moment) if moment else ""

    return age


async def incident_page(request: web.Request) -> web.StreamResponse:
    who = _reader(request)
    incident_id = request.match_info["id"]
    services = request.app[SERVICES]
    loaded = request.app[CONFIG]
    try:
        incident = await services.incidents.get(incident_id)
    except IncidentNotFound:
        return _problem(request, who, 404, f"No incident {incident_id!r}.")
    timeline = await services.incidents.store.timeline(incident_id)
    runs = await incident_runs(services.runs, loaded.playbooks, incident_id)
    for run in runs:
        for step in run["steps"]:
            step["remediation"] = is_remediation(str(step.get("action", "")))
    return _html(request, "incident.html", who, title=f"#{incident.id} {incident.title}", nav="incidents",
                 incident=incident, timeline=timeline, runs=list(reversed(runs)), playbooks=sorted(loaded.playbooks),
                 age=_age(request))


async def incident_postmortem(request: web.Request) -> web.StreamResponse:
    _reader(request)
    return await postmortem_response(request.app, request.match_info["id"])


async def incident_action(request: web.Request) -> web.StreamResponse:
    checked = await _writer(request)
    if isinstance(checked, web.Response):
        return checked
    who, form = checked
    incident_id = request.match_info["id"]
    action = request.match_info["action"]
    service = request.app[SERVICES].incidents
    back = f"/ui/incidents/{quote(incident_id, safe='')}"
    try:
        if action == "ack":
            await service.acknowledge(incident_id, who.actor)
        elif action == "unfreeze":
            await service.unfreeze_automation(incident_id, who.actor)
        else:
            note = str(form.get("note", "")).strip()[:2000]
            await service.resolve(incident_id, who.actor, note)
    except IncidentNotFound:
        return _problem(request, who, 404, f"No incident {incident_id!r}.")
    except IllegalTransition as exc:
        return _problem(request, who, 409, f"Not possible now: {exc}", back)
    return _see_other(f"{back}?done={action}")


async def incident_run(request: web.Request) -> web.StreamResponse:
    checked = await _writer(request)
    if isinstance(checked, web.Response):
        return checked
    who, form = checked
    services = request.app[SERVICES]
    incident_id = request.match_info["id"]
    back = f"/ui/incidents/{quote(incident_id, safe='')}"
    playbook = str(form.get("playbook", ""))
    if playbook not in request.app[CONFIG].playbooks:
        return _problem(request, who, 422, f"No playbook {playbook!r}.", back)
    # checked: a rehearsal; unchecked: the configured behaviour (real unless the playbook or automation says dry)
    dry_run = True if form.get("dry_run") else None
    try:
        incident = await services.incidents.get(incident_id)
    except IncidentNotFound:
        return _problem(request, who, 404, f"No incident {incident_id!r}.")
    if not incident.state.is_open and not dry_run:
        return _problem(request, who, 409, "The incident is resolved: only a dry run is possible.", back)
    run_id = await services.runner.start(incident, playbook, None, phase="manual", dry_run=dry_run, actor=who.actor)
    anchor = f"#run-{quote(run_id, safe='')}" if run_id else ""
    return _see_other(f"{back}?done={'dry-run' if dry_run else 'run'}{anchor}")


# -- probes and silences ---------------------------------------------------------------------------------


async def probes_page(request: web.Request) -> web.StreamResponse:
    who = _reader(request)
    service = request.app[SERVICES].probes
    probes = list(service.definitions.values())
    limit = min(60, service.settings.keep_results)
    histories = await service.history([p.id for p in probes], limit)
    rows = []
    for probe in probes:
        history = histories[probe.id]
        rows.append({**service.describe(probe), "last": history.results[0] if history.results else None,
                     "uptime_24h": history.uptime_24h, "uptime_7d": history.uptime_7d,
                     "spark": sparkline(history.results), "count": len(history.results)})
    return _html(request, "probes.html", who, title="Probes", nav="probes", probes=rows)


async def _silences_page(request: web.Request, who: Access, status: int = 200, error: str = "",
                         form: dict[str, str] | None = None) -> web.Response:
    service = request.app[SERVICES].silences
    show_all = request.query.get("show") == "all"
    states = ("active", "scheduled", "expired") if show_all else ("active", "scheduled")
    silences = await service.list_silences(states)
    counts = await service.hit_counts([s.id for s in silences])
    views = [service.view(s, counts.get(s.id, 0)) for s in silences]
    return _html(request, "silences.html", who, status=status, title="Silences", nav="silences", silences=views,
                 show_all=show_all, error=error, form=form or {"matchers": "", "duration": "2h", "comment": ""})


async def silences_page(request: web.Request) -> web.StreamResponse:
    return await _silences_page(request, _reader(request))


async def create_silence(request: web.Request) -> web.StreamResponse:
    checked = await _writer(request)
    if isinstance(checked, web.Response):
        return checked
    who, form = checked
    values = {k: str(form.get(k, "")).strip() for k in ("matchers", "duration", "comment")}
    spec: dict[str, Any] = {"matchers": values["matchers"], "comment": values["comment"]}
    if values["duration"]:
        spec["duration"] = values["duration"]
    try:
        await request.app[SERVICES].silences.create(spec, who.actor)
    except SilenceError as exc:
        return await _silences_page(request, who, 422, exc.message, values)
    return _see_other("/ui/silences?done=silence")


async def expire_silence(request: web.Request) -> web.StreamResponse:
    checked = await _writer(request)
    if isinstance(checked, web.Response):
        return checked
    who, _form = checked
    silence_id = request.match_info["id"]
    try:
        await request.app[SERVICES].silences.expire(silence_id, who.actor)
    except SilenceNotFound:
        return _problem(request, who, 404, f"No silence {silence_id!r}.", "/ui/silences")
    except SilenceReadOnly as exc:
        return _problem(request, who, 409, exc.message, "/ui/silences")
    return _see_other("/ui/silences?done=expire")


# -- login -----------------------------------------------------------------------------------------------


def _next(raw: str) -> str:
    """Only a path of this dashboard: never another site (open redirect)."""
    if (raw.startswith("/ui/") and not raw.startswith("/ui/login") and "\\" not in raw and "\n" not in raw
            and "\r" not in raw):
        return raw
    return "/ui/incidents"


async def login_page(request: web.Request) -> web.StreamResponse:
    return _html(request, "login.html", access(request), title="Log in", nav="login", error="",
                 next=_next(request.query.get("next", "")))


async def login(request: web.Request) -> web.StreamResponse:
    who = access(request)
    if not check_origin(request):
        return _problem(request, who, 403, "This form was sent from another site: refused.")
    form = await read_form(request)
    target = _next(str(form.get("next", "")))
    scope = login_scope(request.app[CONFIG], str(form.get("token", "")).strip())
    if scope is None:
        return _html(request, "login.html", who, status=401, title="Log in", nav="login", next=target,
                     error="That token is neither the read nor the write token.")
    response = _see_other(target + ("&" if "?" in target else "?") + "done=login")
    start_session(request, response, scope, clean_name(str(form.get("name", ""))))
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    who = access(request)
    if not check_origin(request):
        return _problem(request, who, 403, "This form was sent from another site: refused.")
    form = await read_form(request)
    if who.via == "session" and not csrf_ok(request, who, str(form.get("csrf", ""))):
        return _problem(request, who, 403, "The form's CSRF token is missing or stale: reload the page.")
    response = _see_other("/ui/login?done=logout")
    clear_session(request, response)
    return response


async def index(request: web.Request) -> web.StreamResponse:
    return _see_other("/ui/incidents")


_CSS = resources.files("responder.ui").joinpath("static/ui.css").read_text(encoding="utf-8")


async def stylesheet(request: web.Request) -> web.StreamResponse:
    return web.Response(text=_CSS, content_type="text/css", charset="utf-8",
                        headers={"Cache-Control": "public, max-age=3600"})


def setup_ui_routes(app: web.Application) -> None:
    app[CHART_CACHE] = _ChartCache()
    r = app.router
    r.add_get("/ui", index)
    r.add_get("/ui/", index)
    r.add_get("/ui/static/ui.css", stylesheet)
    r.add_get("/ui/incidents", incidents_page)
    r.add_get("/ui/incidents/{id}", incident_page)
    r.add_get("/ui/incidents/{id}/postmortem.md", incident_postmortem)
    r.add_post("/ui/incidents/{id}/{action:ack|resolve|unfreeze}", incident_action)
    r.add_post("/ui/incidents/{id}/run", incident_run)
    r.add_get("/ui/probes", probes_page)
    r.add_get("/ui/silences", silences_page)
    r.add_post("/ui/silences", create_silence)
    r.add_post("/ui/silences/{id}/expire", expire_silence)
    r.add_get("/ui/login", login_page)
    r.add_post("/ui/login", login)
    r.add_post("/ui/logout", logout)
