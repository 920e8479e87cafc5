"""The built-in public status page: GET /status (HTML) and GET /status.json."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from jinja2 import Environment, select_autoescape

from responder.keys import CONFIG, SERVICES

__all__ = ["setup_status_routes", "status_document"]

_RANK = {"operational": 0, "under_maintenance": 1, "degraded_performance": 2, "partial_outage": 3,
         "major_outage": 4}
_LABEL = {"operational": "Operational", "degraded_performance": "Degraded performance",
          "partial_outage": "Partial outage", "major_outage": "Major outage",
          "under_maintenance": "Under maintenance"}

_PAGE = Environment(autoescape=select_autoescape(default=True)).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="30"><title>{{ doc.title }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:760px;margin:2rem auto;padding:0 1rem;color:#222}
.banner{padding:1rem;border-radius:6px;color:#fff;font-weight:600}
.operational{background:#2e7d32}.degraded_performance{background:#f9a825}.partial_outage{background:#ef6c00}
.major_outage{background:#c62828}.under_maintenance{background:#1565c0}
ul{list-style:none;padding:0}li{padding:.6rem 0;border-bottom:1px solid #eee;display:flex;justify-content:space-between}
.pill{padding:.1rem .5rem;border-radius:4px;color:#fff;font-size:.85rem}small{color:#666}
.bars{display:flex;gap:2px;margin-top:.35rem}.bar{display:inline-block;width:6px;height:20px;border-radius:1px}
</style></head><body>
<h1>{{ doc.title }}</h1>
<div class="banner {{ doc.overall }}">{{ labels[doc.overall] }}</div>
<h2>Components</h2><ul>
{% for c in doc.components %}<li><span>{{ c.name }}
{% if c.message %}<br><small>{{ c.message }}</small>{% endif %}
{% if c.bars %}<span class="bars">{% for b in c.bars %}\
<span class="bar {{ b.level }}" title="{{ b.at }}: {{ b.status }}"></span>{% endfor %}</span>{% endif %}
{% if c.uptime_24h is not none %}<small>{{ c.uptime_24h }}% uptime over 24 h</small>{% endif %}</span>
<span class="pill {{ c.status }}">{{ labels[c.status] }}</span></li>{% else %}<li>No components yet.</li>{% endfor %}
</ul>
<h2>Current incidents</h2><ul>
{% for i in doc.incidents %}<li><span>{{ i.name }}<br><small>{{ i.updates[0].body }} ({{ i.updated_at }})</small>
</span><span>{{ i.status | capitalize }}</span></li>{% else %}<li>No current incidents.</li>{% endfor %}
</ul>
{% if doc.resolved_incidents %}<h2>Resolved recently</h2><ul>
{% for i in doc.resolved_incidents %}<li><span>{{ i.name }}<br><small>{{ i.updates[0].body }}</small></span>
<small>{{ i.resolved_at }}</small></li>{% endfor %}
</ul>{% endif %}
<h2>Recent history</h2><ul>
{% for h in doc.history %}<li><span>{{ h.component }}: {{ labels.get(h.status, h.status) }}
{% if h.message %}<br><small>{{ h.message }}</small>{% endif %}</span><small>{{ h.updated_at }}</small></li>
{% else %}<li>Nothing to report.</li>{% endfor %}
</ul></body></html>""")


BARS = 30  # history bars per component
_PROBE_LEVEL = {"ok": "operational", "failing": "major_outage"}


async def _add_bars(app: web.Application, components: list[dict[str, Any]]) -> None:
    """Each component's recent history, oldest first: its probe's results (a probe names it with `component`),
    else the component's status changes. Only status and time: reasons stay off the public page."""
    services = app[SERVICES]
    probes: dict[str, str] = {}
    for probe in services.probes.runnable():
        if probe.component:
            probes.setdefault(probe.component, probe.id)
    histories = await services.probes.history(sorted(set(probes.values())), BARS)
    changes = await services.status.history(500)
    for component in components:
        probe_id = probes.get(component["id"])
        if probe_id is not None:
            history = histories[probe_id]
            component["bars"] = [{"status": r["status"], "at": r["at"], "level": _PROBE_LEVEL.get(r["status"], "")}
                                 for r in reversed(history.results)]
            component["uptime_24h"] = history.uptime_24h
            component["probe"] = probe_id
        else:
            mine = [c for c in changes if c.get("component") == component["id"]][:BARS]
            component["bars"] = [{"status": c["status"], "at": c.get("updated_at"), "level": c["status"]}
                                 for c in reversed(mine)]
            component["uptime_24h"] = None
            component["probe"] = None


async def status_document(app: web.Application) -> dict[str, Any]:
    services = app[SERVICES]
    page = app[CONFIG].config.status_page
    states = await services.status.components()
    components = []
    for component in page.components:
        state = states.pop(component.id, {})
        components.append({"id": component.id, "name": component.name, "status": state.get("status", "operational"),
                           "message": state.get("message", ""), "updated_at": state.get("updated_at")})
    for component_id, state in sorted(states.items()):  # set by a playbook but not declared in the config
        components.append({"id": component_id, "name": component_id, "status": state["status"],
                           "message": state.get("message", ""), "updated_at": state.get("updated_at")})
    overall = max((c["status"] for c in components), key=lambda s: _RANK.get(s, 0), default="operational")
    await _add_bars(app, components)
    # only what a playbook published (status.incident) is public: internal incident titles, alert text
    # and severities stay on the dashboard
    return {
        "title": page.title,
        "overall": overall,
        "components": components,
        "incidents": [_public(i) for i in await services.status.public_incidents()],
        "resolved_incidents": [_public(i) for i in await services.status.public_incidents(resolved=True, limit=5)],
        "history": await services.status.history(20),
    }


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    keep = ("name", "status", "created_at", "updated_at", "resolved_at", "components")
    return {**{k: doc.get(k) for k in keep}, "updates": doc.get("updates", [])[:10]}


async def status_json(request: web.Request) -> web.Response:
    return web.json_response(await status_document(request.app))


async def status_html(request: web.Request) -> web.Response:
    doc = await status_document(request.app)
    return web.Response(text=_PAGE.render(doc=doc, labels=_LABEL), content_type="text/html", headers={
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                                   "base-uri 'none'; form-action 'none'"})


def setup_status_routes(app: web.Application) -> None:
    app.router.add_get("/status", status_html)
    app.router.add_get("/status.json", status_json)
