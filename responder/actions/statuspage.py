"""`statuspage.*`: Atlassian Statuspage component statuses and public incidents (REST API v1).

- Auth: `Authorization: OAuth <api_key>`; every call is under /pages/{page_id}.
- Statuspage allows 1 request/second per API token (60 s rolling window; 420 or 429 beyond it): each
  provider instance spaces its requests by `min_interval` (an asyncio lock and the time of the last
  request, waiting on the injectable clock). 420 is treated like 429 (retryable).
- A component may be named by id or by name; names are resolved through
  GET /pages/{page_id}/components (paginated, cached for the provider's lifetime, refreshed on a miss).
- `statuspage.incident` opens the public incident on its first call for a responder incident and
  updates that same incident afterwards: the Statuspage incident id is kept in ProviderState, with the
  components the incident touched, so `statuspage.resolve` can put them back to operational.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, SecretStr

from responder.actions.base import (
    ActionProvider,
    ActionResult,
    PlannedCall,
    ProviderDeps,
    StepContext,
    VendorApi,
    VendorConfig,
    VendorResponse,
    retry_after_seconds,
)
from responder.config.base import Duration, StrictModel
from responder.errors import PermanentActionError, RetryableActionError

__all__ = [
    "ComponentStatus",
    "StatuspageConfig",
    "StatuspageIncidentParams",
    "StatuspageProvider",
    "StatuspageResolveParams",
    "StatuspageSetParams",
]

DEFAULT_BASE_URL = "https://api.statuspage.io/v1"
PER_PAGE = 100  # the most GET /components returns per page
MAX_PAGES = 20

ComponentStatus = Literal["operational", "degraded_performance", "partial_outage", "major_outage",
                          "under_maintenance"]
IncidentStatus = Literal["investigating", "identified", "monitoring", "resolved"]


class StatuspageConfig(VendorConfig):
    api_key: SecretStr | None = Field(default=None, description="Statuspage API key (manage.statuspage.io, API info)")
    page_id: str | None = Field(default=None, description="id of the status page to update")
    base_url: str = Field(default=DEFAULT_BASE_URL, pattern=r"^https?://", description="Statuspage API URL")
    min_interval: Duration = Field(default=timedelta(seconds=1),
                                   description="spacing between requests (Statuspage allows 1 request/s per key)")

    def has_credentials(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value()) and bool(self.page_id)


class StatuspageSetParams(StrictModel):
    component: str = Field(min_length=1, description="component id, or its name as shown on the page")
    status: ComponentStatus = Field(description="operational, degraded_performance, partial_outage, major_outage "
                                                "or under_maintenance")


class StatuspageIncidentParams(StrictModel):
    name: str | None = Field(default=None, max_length=255,
                             description="incident title; default: the responder incident's title (on creation)")
    status: IncidentStatus = Field(default="investigating",
                                   description="investigating, identified, monitoring or resolved")
    body: str | None = Field(default=None, max_length=25000, description="the update's public message")
    components: dict[str, ComponentStatus] = Field(
        default_factory=dict, description="component (id or name) -> status, set with this update")
    impact_override: Literal["none", "minor", "major", "critical"] | None = Field(
        default=None, description="impact shown on the page; default: computed from the component statuses")
    deliver_notifications: bool = Field(default=True, description="notify the page's subscribers of this update")


class StatuspageResolveParams(StrictModel):
    body: str = Field(default="This incident has been resolved.", max_length=25000,
                      description="the resolving update's public message")
    components: dict[str, ComponentStatus] = Field(
        default_factory=dict, description="component (id or name) -> status, set with the resolution")
    restore_components: bool = Field(
        default=True, description="put every component this incident touched back to operational "
                                  "(unless listed in components)")
    deliver_notifications: bool = Field(default=True, description="notify the page's subscribers")


class StatuspageProvider(ActionProvider):
    name = "statuspage"
    Config = StatuspageConfig
    actions = {"set": StatuspageSetParams, "incident": StatuspageIncidentParams, "resolve": StatuspageResolveParams}

    def __init__(self, config: StrictModel | None, deps: ProviderDeps) -> None:
        super().__init__(config, deps)
        assert isinstance(config, StatuspageConfig) and config.api_key is not None and config.page_id
        self.page_id = config.page_id
        self.min_interval = config.min_interval.total_seconds()
        self.api = VendorApi(self.name, deps.http, config.base_url,
                             headers={"Authorization": f"OAuth {config.api_key.get_secret_value()}",
                                      "Accept": "application/json"},
                             secrets=config.secrets(), timeout=config.timeout)
        self._throttle = asyncio.Lock()
        self._last_request: datetime | None = None
        self._incident_locks: dict[str, asyncio.Lock] = {}
        #: component id -> name, and lower-cased name -> id (None until first listed)
        self._names: dict[str, str] | None = None
        self._ids: dict[str, str] = {}
        self._listing = asyncio.Lock()
        self._generation = 0

    # -- HTTP, one request per second ----------------------------------------------------------------
    async def _request(self, method: str, path: str, *, json_body: Any = None, params: dict[str, str] | None = None,
                       ok: tuple[int, ...] = ()) -> VendorResponse:
        async with self._throttle:
            if self._last_request is not None:
                wait = self.min_interval - (self.deps.clock.now() - self._last_request).total_seconds()
                if wait > 0:
                    await self.deps.clock.sleep(wait)
            try:
                response = await self.api.request(method, path, json_body=json_body, params=params, ok=(420, *ok))
            finally:
                self._last_request = self.deps.clock.now()
        if response.status == 420:  # Statuspage's other "rate limited" status
            raise RetryableActionError(f"statuspage: {method} {path.split('?')[0]}: HTTP 420, rate limited",
                                       retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        return response

    def _page(self, suffix: str) -> str:
        return f"/pages/{self.page_id}/{suffix.lstrip('/')}"

    # -- components by name or id ---------------------------------------------------------------------
    async def _list_components(self) -> None:
        names: dict[str, str] = {}
        for page in range(1, MAX_PAGES + 1):
            response = await self._request("GET", self._page("components"),
                                           params={"page": str(page), "per_page": str(PER_PAGE)})
            items = response.json()
            if not isinstance(items, list):
                raise PermanentActionError(f"statuspage: GET components: expected a list, got {response.text[:120]!r}")
            names.update({str(c["id"]): str(c.get("name", "")) for c in items if isinstance(c, dict) and "id" in c})
            if len(items) < PER_PAGE:
                break
        self._names = names
        self._ids = {name.strip().lower(): cid for cid, name in names.items()}
        self._generation += 1

    def _cached_id(self, component: str) -> str | None:
        if self._names is None:
            return None
        if component in self._names:
            return component
        return self._ids.get(component.strip().lower())

    async def _component_id(self, component: str) -> str:
        found = self._cached_id(component)
        if found is None:
            generation = self._generation
            async with self._listing:
                if self._generation == generation:  # nobody listed the components while this step waited
                    await self._list_components()
            found = self._cached_id(component)
        if found is None:
            known = ", ".join(sorted(f"{name} ({cid})" for cid, name in (self._names or {}).items())) or "none"
            raise PermanentActionError(f"statuspage: no component {component!r} on page {self.page_id} "
                                       f"(known: {known})")
        return found

    async def _component_map(self, components: Mapping[str, str]) -> dict[str, str]:
        return {await self._component_id(name): status for name, status in components.items()}

    def _component_label(self, cid: str) -> str:
        return (self._names or {}).get(cid) or cid

    # -- dry-run ----------------------------------------------------------------------------------------
    def _planned_id(self, component: str) -> str:
        return self._cached_id(component) or f"<id of component {component!r}>"

    def _planned_components(self, components: Mapping[str, str]) -> tuple[list[PlannedCall], dict[str, str]]:
        ids = {self._planned_id(name): status for name, status in components.items()}
        lookups = [] if all(self._cached_id(n) for n in components) else [self.api.planned(
            "GET", self._page(f"components?page=1&per_page={PER_PAGE}"),
            note="resolves component names to ids")]
        return lookups, ids

    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        if isinstance(params, StatuspageSetParams):
            lookups, ids = self._planned_components({params.component: params.status})
            [(cid, status)] = ids.items()
            return [*lookups, self.api.planned("PATCH", self._page(f"components/{cid}"),
                                               {"component": {"status": status}})]
        if isinstance(params, StatuspageIncidentParams):
            lookups, ids = self._planned_components(params.components)
            body = self._incident_body(params, ctx, ids, create=True)
            return [*lookups, self.api.planned(
                "POST", self._page("incidents"), body,
                note="on the first statuspage.incident of this incident; later ones PATCH "
                     f"{self._page('incidents/<its Statuspage incident id>')} with the same fields (no name "
                     "unless given, no metadata)")]
        assert isinstance(params, StatuspageResolveParams)
        lookups, ids = self._planned_components(params.components)
        body = {"incident": {"status": "resolved", "body": params.body, "components": ids,
                             "deliver_notifications": params.deliver_notifications}}
        note = "the Statuspage incident opened by statuspage.incident for this incident"
        if params.restore_components:
            note += "; components it touched are set operational too"
        return [*lookups, self.api.planned("PATCH", self._page("incidents/<Statuspage incident of this incident>"),
                                           body, note=note)]

    # -- run ----------------------------------------------------------------------------------------------
    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        if isinstance(params, StatuspageSetParams):
            return await self._set(params, ctx)
        if isinstance(params, StatuspageIncidentParams):
            lock = self._incident_locks.setdefault(ctx.incident.id, asyncio.Lock())
            async with lock:  # one creation per incident, even when two steps race
                return await self._incident(params, ctx)
        assert isinstance(params, StatuspageResolveParams)
        return await self._resolve(params, ctx)

    async def _set(self, params: StatuspageSetParams, ctx: StepContext) -> ActionResult:
        cid = await self._component_id(params.component)
        response = await self._request("PATCH", self._page(f"components/{cid}"),
                                       json_body={"component": {"status": params.status}})
        data = response.json()
        name = data.get("name") if isinstance(data, dict) else None
        label = name or self._component_label(cid)
        if params.status != "operational":
            await self._remember_components(ctx.incident.id, [cid])
        return ActionResult(f"Statuspage component {label} is now {params.status}",
                            {"component_id": cid, "component": label, "status": params.status})

    async def _remember_components(self, incident_id: str, ids: list[str]) -> None:
        state = await self.deps.state.get(incident_id, self.name)
        touched = [c for c in state.get("components", "").split(",") if c]
        merged = touched + [c for c in ids if c not in touched]
        if merged != touched:
            await self.deps.state.set(incident_id, self.name, components=",".join(merged))

    def _incident_body(self, params: StatuspageIncidentParams, ctx: StepContext, components: dict[str, str],
                       *, create: bool) -> dict[str, Any]:
        incident: dict[str, Any] = {"status": params.status, "deliver_notifications": params.deliver_notifications}
        if create or params.name:
            incident["name"] = (params.name or ctx.incident.title)[:255]
        if params.body:
            incident["body"] = params.body
        if components:
            incident["components"] = components
            incident["component_ids"] = list(components)
        if params.impact_override:
            incident["impact_override"] = params.impact_override
        if create:
            responder = {"incident_id": ctx.incident.id, **({"url": ctx.incident_url} if ctx.incident_url else {})}
            incident["metadata"] = {"responder": responder}
        return {"incident": incident}

    async def _incident(self, params: StatuspageIncidentParams, ctx: StepContext) -> ActionResult:
        state = await self.deps.state.get(ctx.incident.id, self.name)
        components = await self._component_map(params.components)
        existing = state.get("page_incident_id")
        response = None
        if existing:
            response = await self._request("PATCH", self._page(f"incidents/{existing}"), ok=(404,),
                                           json_body=self._incident_body(params, ctx, components, create=False))
            if response.status == 404:  # deleted on Statuspage: open a new one rather than fail for good
                response, existing = None, ""
        if response is None:
            response = await self._request("POST", self._page("incidents"),
                                           json_body=self._incident_body(params, ctx, components, create=True))
        data = response.json()
        if not isinstance(data, dict) or not data.get("id"):
            raise PermanentActionError(f"statuspage: unexpected incident response: {response.text[:120]!r}")
        sp_id = str(data["id"])
        status = str(data.get("status") or params.status)
        await self.deps.state.set(ctx.incident.id, self.name, page_incident_id=sp_id, status=status,
                                  shortlink=str(data.get("shortlink") or ""))
        touched = [cid for cid, value in components.items() if value != "operational"]
        if touched:
            await self._remember_components(ctx.incident.id, touched)
        parts = ", ".join(f"{self._component_label(cid)} {value}" for cid, value in components.items())
        return ActionResult(f"{'updated' if existing else 'opened'} Statuspage incident {sp_id} ({status})"
                            + (f": {parts}" if parts else ""),
                            {"incident_id": sp_id, "status": status, "shortlink": data.get("shortlink"),
                             "created": not existing, "components": components})

    async def _resolve(self, params: StatuspageResolveParams, ctx: StepContext) -> ActionResult:
        state = await self.deps.state.get(ctx.incident.id, self.name)
        components = await self._component_map(params.components)
        if params.restore_components:
            for cid in (c for c in state.get("components", "").split(",") if c):
                components.setdefault(cid, "operational")
        sp_id = state.get("page_incident_id")
        if sp_id:
            body: dict[str, Any] = {"status": "resolved", "body": params.body,
                                    "deliver_notifications": params.deliver_notifications}
            if components:
                body["components"] = components
                body["component_ids"] = list(components)
            response = await self._request("PATCH", self._page(f"incidents/{sp_id}"), json_body={"incident": body},
                                           ok=(404,))
            if response.status != 404:
                data = response.json()
                await self.deps.state.set(ctx.incident.id, self.name, status="resolved")
                parts = ", ".join(f"{self._component_label(cid)} {value}" for cid, value in components.items())
                return ActionResult(f"resolved Statuspage incident {sp_id}" + (f": {parts}" if parts else ""),
                                    {"incident_id": sp_id, "status": "resolved", "components": components,
                                     "shortlink": data.get("shortlink") if isinstance(data, dict) else None})
        for cid, value in components.items():  # no public incident (any more): still put the components right
            await self._request("PATCH", self._page(f"components/{cid}"), json_body={"component": {"status": value}})
        why = (f"Statuspage incident {sp_id} no longer exists" if sp_id
               else f"no Statuspage incident was opened for incident #{ctx.incident.id}")
        done = f"; set {len(components)} component(s)" if components else ""
        return ActionResult(f"{why}; nothing to resolve{done}", {"incident_id": None, "components": components})
