"""StatuspageStandIn: Atlassian Statuspage's REST API v1 for one page: components and realtime incidents.

Endpoints (shapes from Atlassian's OpenAPI spec, as vendored in sbecker59/statuspage-api-client-go):
- GET   /pages/{page_id}/components?page=&per_page=        -> 200 [Component] (paginated, at most 100)
- PATCH /pages/{page_id}/components/{component_id}          {"component": {"status": ...}} -> 200 Component
- POST  /pages/{page_id}/incidents                          {"incident": {...}} -> 201 Incident
- PATCH /pages/{page_id}/incidents/{incident_id}            {"incident": {...}} -> 200 Incident
- GET   /pages/{page_id}/incidents/{incident_id}            -> 200 Incident

Auth is `Authorization: OAuth <api key>` (401 otherwise). Errors use the spec's ErrorEntity,
`{"message": ...}`: 400 for a body that is not JSON or lacks its `component`/`incident` wrapper, 404 for
an unknown page, component or incident, 422 for an invalid status, impact or component. Incidents keep
`incident_updates` (newest first, each with `affected_components`), `impact` computed from component
statuses unless overridden, `resolved_at`/`monitoring_at`, and change the page's component statuses.

The test suite's StatuspageFake is this class plus fault injection (tests/fakes/statuspage.py).
"""

from __future__ import annotations

import json
import secrets
import string
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from responder.demo.standins.base import StandIn

__all__ = ["StatuspageStandIn"]

COMPONENT_STATUSES = ("operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage")
INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
IMPACTS = ("none", "maintenance", "minor", "major", "critical")
IMPACT_OF = {"operational": "none", "under_maintenance": "maintenance", "degraded_performance": "minor",
             "partial_outage": "major", "major_outage": "critical"}


def _id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


class StatuspageStandIn(StandIn):
    name = "statuspage"

    def __init__(self, *, api_key: str, page_id: str = "pg7x2m9pq4r1", components: list[str] | None = None,
                 tls: bool = False) -> None:
        super().__init__(token=api_key, tls=tls)
        self.page_id = page_id
        #: component id -> Component, in page order
        self.components: dict[str, dict[str, Any]] = {}
        #: incident id -> Incident
        self.incidents: dict[str, dict[str, Any]] = {}
        for name in components or ["API", "Background workers", "Web app"]:
            self.add_component(name)

    def add_component(self, name: str, status: str = "operational") -> dict[str, Any]:
        now = _now()
        component: dict[str, Any] = {"id": _id(), "page_id": self.page_id, "group_id": None, "created_at": now,
                                     "updated_at": now,
                                     "group": False, "name": name, "description": None,
                                     "position": len(self.components) + 1, "status": status, "showcase": True,
                                     "only_show_if_degraded": False,
                                     "automation_email": f"component+{_id()}@notifications.statuspage.io",
                                     "start_date": None}
        self.components[component["id"]] = component
        return component

    def component(self, name: str) -> dict[str, Any]:
        return next(c for c in self.components.values() if c["name"] == name)

    # -- auth ----------------------------------------------------------------------------------------------
    def authorized(self, request: web.Request) -> bool:
        return self.token is None or request.headers.get("Authorization") == f"OAuth {self.token}"

    def unauthorized(self) -> web.Response:
        return _error(401, "Could not authenticate")

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/pages/{page_id}/components", self._list_components)
        router.add_patch("/pages/{page_id}/components/{component_id}", self._patch_component)
        router.add_put("/pages/{page_id}/components/{component_id}", self._patch_component)
        router.add_post("/pages/{page_id}/incidents", self._create_incident)
        router.add_get("/pages/{page_id}/incidents/{incident_id}", self._get_incident)
        router.add_patch("/pages/{page_id}/incidents/{incident_id}", self._patch_incident)
        router.add_put("/pages/{page_id}/incidents/{incident_id}", self._patch_incident)

    # -- helpers -------------------------------------------------------------------------------------------
    def _page_missing(self, request: web.Request) -> web.Response | None:
        if request.match_info["page_id"] != self.page_id:
            return _error(404, "The requested resource could not be found.")
        return None

    @staticmethod
    async def _wrapped(request: web.Request, key: str) -> dict[str, Any] | web.Response:
        if not request.content_type.startswith("application/json"):
            return _error(400, "Content-Type must be application/json")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "Could not parse the request body as JSON")
        if not isinstance(body, dict) or not isinstance(body.get(key), dict):
            return _error(400, f"{key} is missing")
        inner: dict[str, Any] = body[key]
        return inner

    def _check_components(self, fields: dict[str, Any]) -> str | None:
        components = fields.get("components", {})
        if not isinstance(components, dict):
            return "components must be an object of component id -> status"
        for cid, status in components.items():
            if cid not in self.components:
                return f"Component {cid} not found on this page"
            if status not in COMPONENT_STATUSES:
                return f"Component status {status!r} is not included in the list"
        ids = fields.get("component_ids", [])
        if not isinstance(ids, list) or any(cid not in self.components for cid in ids):
            return "component_ids must list components of this page"
        return None

    def _check_incident(self, fields: dict[str, Any], *, create: bool) -> str | None:
        if create and (not isinstance(fields.get("name"), str) or not fields["name"].strip()):
            return "Name can't be blank"
        if "name" in fields and len(str(fields["name"])) > 255:
            return "Name is too long (maximum is 255 characters)"
        if "status" in fields and fields["status"] not in INCIDENT_STATUSES:
            return f"Status {fields['status']!r} is not included in the list"
        if "impact_override" in fields and fields["impact_override"] not in IMPACTS:
            return "Impact override is not included in the list"
        if "body" in fields and len(str(fields["body"])) > 25000:
            return "Body is too long (maximum is 25000 characters)"
        if "metadata" in fields and (not isinstance(fields["metadata"], dict)
                                     or not all(isinstance(v, dict) for v in fields["metadata"].values())):
            return "Metadata top level values must be objects"
        return self._check_components(fields)

    def _apply(self, incident: dict[str, Any], fields: dict[str, Any]) -> None:
        now = _now()
        affected = []
        for cid, status in fields.get("components", {}).items():
            component = self.components[cid]
            if component["status"] != status:
                affected.append({"code": cid, "name": component["name"], "old_status": component["status"],
                                 "new_status": status})
            component.update(status=status, updated_at=now)
            if not any(c["id"] == cid for c in incident["components"]):
                incident["components"].append(component)
        incident["components"] = [self.components[c["id"]] for c in incident["components"]]
        old_status = incident["status"]
        for key in ("name", "impact_override", "metadata"):
            if key in fields:
                incident[key] = fields[key]
        incident["status"] = fields.get("status", old_status)
        if incident["status"] == "resolved" and not incident["resolved_at"]:
            incident["resolved_at"] = now
        if incident["status"] == "monitoring" and not incident["monitoring_at"]:
            incident["monitoring_at"] = now
        worst = max((IMPACTS.index(IMPACT_OF[c["status"]]) for c in incident["components"]), default=0)
        incident["impact"] = incident["impact_override"] or IMPACTS[worst]
        if "body" in fields or incident["status"] != old_status or affected or not incident["incident_updates"]:
            incident["incident_updates"].insert(0, {
                "id": _id(), "incident_id": incident["id"], "status": incident["status"],
                "body": fields.get("body", ""), "created_at": now, "updated_at": now, "display_at": now,
                "affected_components": affected or None,
                "deliver_notifications": bool(fields.get("deliver_notifications", True)),
                "custom_tweet": None, "tweet_id": None, "twitter_updated_at": None, "wants_twitter_update": False})
        incident["updated_at"] = now

    # -- handlers ------------------------------------------------------------------------------------------
    async def _list_components(self, request: web.Request) -> web.Response:
        if (missing := self._page_missing(request)) is not None:
            return missing
        try:
            page = max(int(request.query.get("page", "1")), 1)
            per_page = min(max(int(request.query.get("per_page", "100")), 1), 100)
        except ValueError:
            return _error(400, "page and per_page must be integers")
        items = list(self.components.values())[(page - 1) * per_page: page * per_page]
        return web.json_response(items)

    async def _patch_component(self, request: web.Request) -> web.Response:
        if (missing := self._page_missing(request)) is not None:
            return missing
        fields = await self._wrapped(request, "component")
        if isinstance(fields, web.Response):
            return fields
        component = self.components.get(request.match_info["component_id"])
        if component is None:
            return _error(404, "The requested resource could not be found.")
        if "status" in fields and fields["status"] not in COMPONENT_STATUSES:
            return _error(422, f"Status {fields['status']!r} is not included in the list")
        allowed = {"name", "description", "status", "showcase", "only_show_if_degraded", "group_id", "start_date"}
        component.update({k: v for k, v in fields.items() if k in allowed}, updated_at=_now())
        return web.json_response(component)

    async def _create_incident(self, request: web.Request) -> web.Response:
        if (missing := self._page_missing(request)) is not None:
            return missing
        fields = await self._wrapped(request, "incident")
        if isinstance(fields, web.Response):
            return fields
        if (problem := self._check_incident(fields, create=True)) is not None:
            return _error(422, problem)
        now = _now()
        incident: dict[str, Any] = {
            "id": _id(), "page_id": self.page_id, "name": fields["name"], "status": "investigating",
            "impact": "none", "impact_override": None, "created_at": now, "updated_at": now, "started_at": now,
            "monitoring_at": None, "resolved_at": None, "shortlink": f"https://stspg.io/{_id()[:9]}",
            "components": [], "incident_updates": [], "metadata": {}, "postmortem_body": None,
            "postmortem_published_at": None, "scheduled_for": None, "scheduled_until": None,
            "reminder_intervals": None}
        self._apply(incident, fields)
        self.incidents[incident["id"]] = incident
        return web.json_response(incident, status=201)

    async def _get_incident(self, request: web.Request) -> web.Response:
        if (missing := self._page_missing(request)) is not None:
            return missing
        incident = self.incidents.get(request.match_info["incident_id"])
        if incident is None:
            return _error(404, "The requested resource could not be found.")
        return web.json_response(incident)

    async def _patch_incident(self, request: web.Request) -> web.Response:
        if (missing := self._page_missing(request)) is not None:
            return missing
        fields = await self._wrapped(request, "incident")
        if isinstance(fields, web.Response):
            return fields
        incident = self.incidents.get(request.match_info["incident_id"])
        if incident is None:
            return _error(404, "The requested resource could not be found.")
        if (problem := self._check_incident(fields, create=False)) is not None:
            return _error(422, problem)
        self._apply(incident, fields)
        return web.json_response(incident)
