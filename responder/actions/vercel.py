"""vercel: instant rollback and promote of a project's production deployment (Vercel REST API).

Calls (all with `Authorization: Bearer <token>`, and `?teamId=` when `providers.vercel.team_id` is set):
- `GET /v9/projects/{idOrName}`: the project's id, its current production deployment
  (`targets.production`) and the state of the last rollback/promote (`lastAliasRequest`);
- `GET /v6/deployments?projectId=&target=production&state=READY&limit=`: production deployments,
  newest first; `GET /v13/deployments/{idOrUrl}`: one deployment, by id or URL;
- `POST /v1/projects/{projectId}/rollback/{deploymentId}?description=`: instant rollback — the
  production domains point at that earlier deployment again, nothing is rebuilt (201);
- `POST /v10/projects/{projectId}/promote/{deploymentId}`: point production at a given production
  deployment (201, or 202 when Vercel finishes it asynchronously). Promoting is also how a rollback is
  undone: after a rollback Vercel stops assigning new production deployments until one is promoted.

Which deployment. `vercel.rollback` without `deployment` takes the newest READY production
deployment created before the current one (`targets.production`) that has served production
(not STAGED) and that Vercel offers for rollback (`isRollbackCandidate`) — never the current one,
and never a newer one (after an earlier rollback, the newer deployments are the bad ones).
On the Hobby plan Vercel only allows rolling back to the previous production deployment.

Both verbs then watch `lastAliasRequest` (every 2 s, up to `wait`) until Vercel reports the alias
job succeeded; a failed or skipped job is a permanent error, one still running at the deadline is
retryable. A retry of the same step reuses the first attempt's target (kept in the incident's provider
state) and does not ask again while that job is running, or once the project already serves it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import Field, SecretStr

from responder.actions.base import (
    ActionProvider,
    ActionResult,
    PlannedCall,
    ProviderDeps,
    Remediation,
    StepContext,
    VendorApi,
    VendorConfig,
    retry_after_seconds,
)
from responder.config.base import Duration, StrictModel
from responder.errors import PermanentActionError, RetryableActionError

__all__ = ["VercelConfig", "VercelPromoteParams", "VercelProvider", "VercelRollbackParams"]

VERCEL_API = "https://api.vercel.com"
#: how many production deployments are looked at
HISTORY = 20
POLL_SECONDS = 2.0
RUNNING = ("pending", "in-progress")


class VercelConfig(VendorConfig):
    token: SecretStr | None = Field(default=None, description="Vercel access token")
    team_id: str | None = Field(default=None, description="teamId query parameter for team-owned projects")
    base_url: str | None = Field(default=VERCEL_API, description="REST API base URL (override for tests or proxies)")


class _Project(StrictModel):
    project: str = Field(min_length=1, description="Vercel project name or id")
    wait: Duration = Field(default=timedelta(seconds=60),
                           description="how long to wait for Vercel to move the production domains (0s: do not wait)")


class VercelRollbackParams(_Project):
    deployment: str | None = Field(default=None, description="deployment id or URL to roll back to; default: the "
                                                             "previous production deployment")
    reason: str | None = Field(default=None, description="why (shown in Vercel); default: the incident's id and title")


class VercelPromoteParams(_Project):
    deployment: str = Field(min_length=1, description="deployment id or URL to serve production from")


@dataclass(frozen=True)
class _State:
    """What GET /v9/projects tells: the project, what serves production, the last alias job."""

    id: str
    name: str
    current: str | None
    current_created: int | None
    job: dict[str, Any]

    @classmethod
    def parse(cls, body: Any) -> _State:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise PermanentActionError(f"vercel: unexpected project in the response: {str(body)[:120]}")
        targets = body.get("targets") if isinstance(body.get("targets"), dict) else {}
        production = targets.get("production") if isinstance(targets, dict) else None
        current = production.get("id") if isinstance(production, dict) else None
        created = production.get("createdAt") if isinstance(production, dict) else None
        job = body.get("lastAliasRequest") if isinstance(body.get("lastAliasRequest"), dict) else {}
        return cls(body["id"], str(body.get("name", body["id"])), current if isinstance(current, str) else None,
                   created if isinstance(created, int) else None, job or {})

    def job_towards(self, deployment_id: str) -> str | None:
        """The status of the last alias job when it moves production to `deployment_id`."""
        if self.job.get("toDeploymentId") == deployment_id:
            status = self.job.get("jobStatus")
            return str(status) if status else None
        return None


def short(deployment_id: str | None) -> str:
    if not deployment_id:
        return "none"
    return deployment_id if len(deployment_id) <= 12 else f"{deployment_id[:12]}…"


def previous_production(deployments: list[dict[str, Any]], current: str | None,
                        current_created: int | None) -> dict[str, Any] | None:
    """The newest READY production deployment older than the current one that may be rolled back to."""
    items = sorted((d for d in deployments if isinstance(d, dict) and isinstance(d.get("uid"), str)),
                   key=lambda d: int(d.get("created") or d.get("createdAt") or 0), reverse=True)
    if current_created is None and current is not None:
        current_created = next((int(d.get("created") or 0) for d in items if d["uid"] == current), None)
    for item in items:
        created = int(item.get("created") or item.get("createdAt") or 0)
        if item["uid"] == current or (current_created is not None and created >= current_created):
            continue
        if (item.get("readyState") or item.get("state")) != "READY" or item.get("target") != "production":
            continue
        if item.get("isRollbackCandidate") is False or item.get("readySubstate") == "STAGED":
            continue
        return item
    return None


def _host(deployment: str) -> str:
    """A deployment id, or the host of a deployment URL (`https://app-abc.vercel.app/` -> `app-abc.vercel.app`)."""
    text = deployment.strip()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text.split("/", 1)[0]


class VercelProvider(ActionProvider):
    name = "vercel"
    Config = VercelConfig
    actions = {"rollback": VercelRollbackParams, "promote": VercelPromoteParams}

    def __init__(self, config: StrictModel | None, deps: ProviderDeps) -> None:
        super().__init__(config, deps)
        cfg = config if isinstance(config, VercelConfig) else VercelConfig()
        self.cfg = cfg
        token = cfg.token.get_secret_value() if cfg.token else ""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.api = VendorApi(self.name, deps.http, cfg.base_url or VERCEL_API, headers=headers,
                             secrets=cfg.secrets(), timeout=cfg.timeout)

    # -- budget and dry-run ------------------------------------------------------------------------------
    def remediation(self, verb: str, params: StrictModel) -> Remediation | None:
        assert isinstance(params, _Project)
        return Remediation(kind=verb, target=f"vercel:{params.project}")

    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        assert isinstance(params, VercelRollbackParams | VercelPromoteParams)
        calls = [self._planned("GET", f"/v9/projects/{quote(params.project, safe='')}",
                               note="the project's id and its current production deployment")]
        project_id = f"<id of project {params.project}>"
        if params.deployment:
            calls.append(self._planned("GET", f"/v13/deployments/{quote(_host(params.deployment), safe='')}",
                                       note="check the deployment belongs to the project and is READY"))
            target = f"<id of deployment {params.deployment}>"
        else:
            calls.append(self._planned("GET", "/v6/deployments", query={
                "projectId": project_id, "target": "production", "state": "READY", "limit": str(HISTORY)},
                note="find the previous production deployment (skipping the current one)"))
            target = "<previous production deployment>"
        if isinstance(params, VercelRollbackParams):
            calls.append(self._planned("POST", f"/v1/projects/{project_id}/rollback/{target}", {},
                                       query={"description": self._reason(params, ctx)},
                                       idempotency_key=ctx.idempotency_key, note="instant rollback"))
        else:
            calls.append(self._planned("POST", f"/v10/projects/{project_id}/promote/{target}", {},
                                       idempotency_key=ctx.idempotency_key, note="promote to production"))
        if params.wait.total_seconds() > 0:
            calls.append(self._planned("GET", f"/v9/projects/{project_id}",
                                       note=f"poll lastAliasRequest every {POLL_SECONDS:g}s until the job succeeds "
                                            f"(at most {params.wait.total_seconds():g}s)"))
        return calls

    def _planned(self, method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None,
                 idempotency_key: str | None = None, note: str = "") -> PlannedCall:
        headers = {"Authorization": "***"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        url = self.api.url(path)
        params = self._query(query)
        if params:
            url += "?" + urlencode(params)
        return PlannedCall(method, url, body, headers, note)

    # -- run -----------------------------------------------------------------------------------------------
    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        assert isinstance(params, VercelRollbackParams | VercelPromoteParams)
        project = await self._project(params.project)
        field = f"{verb}:{ctx.idempotency_key}"
        remembered = (await self.deps.state.get(ctx.incident.id, self.name)).get(field)
        if remembered:  # a retry of this step: keep the first attempt's choice
            prior = json.loads(remembered)
            from_id, to_id, to_url = prior.get("from"), str(prior["to"]), prior.get("url")
        else:
            from_id = project.current
            chosen = await self._choose(verb, params, project)
            to_id, to_url = chosen["id"], chosen.get("url")
            await self.deps.state.set(ctx.incident.id, self.name,
                                      **{field: json.dumps({"from": from_id, "to": to_id, "url": to_url})})
        output = {"project": project.name, "project_id": project.id, "from_deployment_id": from_id,
                  "to_deployment_id": to_id, "to_url": to_url}
        done = "rolled back" if verb == "rollback" else "promoted"
        if project.current == to_id:
            return ActionResult(f"{project.name} production already serves deployment {short(to_id)}",
                                {**output, "job_status": "succeeded"})
        if project.job_towards(to_id) not in RUNNING:  # not already on its way (an earlier attempt asked)
            await self._request_change(verb, params, ctx, project.id, to_id)
        status = await self._wait(project.id, to_id, params.wait.total_seconds())
        if status in ("failed", "skipped"):
            raise PermanentActionError(f"vercel: {verb} of {project.name} to deployment {to_id} {status}: Vercel "
                                       "did not move the production domains (see the project's deployments page)")
        what = (f"{done} {project.name} production to deployment {short(to_id)} (was {short(from_id)})"
                if verb == "rollback" else f"{done} deployment {short(to_id)} to {project.name} production "
                                           f"(was {short(from_id)})")
        if status != "succeeded":
            what += f" — Vercel accepted, job {status}"
        return ActionResult(what, {**output, "job_status": status})

    async def _choose(self, verb: str, params: VercelRollbackParams | VercelPromoteParams,
                      project: _State) -> dict[str, Any]:
        if params.deployment:
            found = await self._get(f"/v13/deployments/{quote(_host(params.deployment), safe='')}")
            if not isinstance(found, dict) or not isinstance(found.get("id"), str):
                raise PermanentActionError(f"vercel: unexpected deployment in the response: {str(found)[:120]}")
            if found.get("projectId") not in (None, project.id):
                raise PermanentActionError(f"vercel: deployment {found['id']} belongs to another project, not "
                                           f"{project.name}")
            state = found.get("readyState") or found.get("state")
            if state != "READY":
                raise PermanentActionError(f"vercel: deployment {found['id']} is {state}, not READY")
            if found.get("target") != "production":
                raise PermanentActionError(f"vercel: deployment {found['id']} is a preview deployment; Vercel only "
                                           f"{'rolls back to' if verb == 'rollback' else 'promotes'} production "
                                           "deployments without a rebuild (deploy it to production instead)")
            return {"id": found["id"], "url": found.get("url")}
        listing = await self._get("/v6/deployments", {"projectId": project.id, "target": "production",
                                                      "state": "READY", "limit": str(HISTORY)})
        items = listing.get("deployments") if isinstance(listing, dict) else None
        if not isinstance(items, list):
            raise PermanentActionError(f"vercel: unexpected deployments list: {str(listing)[:120]}")
        chosen = previous_production(items, project.current, project.current_created)
        if chosen is None:
            raise PermanentActionError(f"vercel: no previous production deployment of {project.name} to roll back "
                                       f"to (current: {short(project.current)}; looked at the {len(items)} most "
                                       "recent READY production deployments); give `deployment` to choose one")
        return {"id": chosen["uid"], "url": chosen.get("url")}

    async def _request_change(self, verb: str, params: VercelRollbackParams | VercelPromoteParams, ctx: StepContext,
                              project_id: str, deployment_id: str) -> None:
        headers = {"Idempotency-Key": ctx.idempotency_key}
        if isinstance(params, VercelRollbackParams):
            path = f"/v1/projects/{quote(project_id, safe='')}/rollback/{quote(deployment_id, safe='')}"
            query = self._query({"description": self._reason(params, ctx)})
        else:
            path = f"/v10/projects/{quote(project_id, safe='')}/promote/{quote(deployment_id, safe='')}"
            query = self._query(None)
        await self._call("POST", path, query, json_body={}, headers=headers)

    async def _wait(self, project_id: str, deployment_id: str, seconds: float) -> str:
        """Poll the project until its last alias job towards `deployment_id` ends (or production serves it)."""
        if seconds <= 0:
            return "requested"
        deadline = self.deps.clock.now() + timedelta(seconds=seconds)
        while True:
            project = await self._project(project_id)
            status = project.job_towards(deployment_id)
            if status in ("succeeded", "failed", "skipped"):
                return status
            if status is None and project.current == deployment_id:
                return "succeeded"
            if self.deps.clock.now() >= deadline:
                raise RetryableActionError(f"vercel: moving {project.name} production to deployment {deployment_id} "
                                           f"is still {status or 'pending'} after {seconds:g}s")
            await self.deps.clock.sleep(POLL_SECONDS)

    # -- HTTP ----------------------------------------------------------------------------------------------
    async def _project(self, id_or_name: str) -> _State:
        return _State.parse(await self._get(f"/v9/projects/{quote(id_or_name, safe='')}"))

    async def _get(self, path: str, query: dict[str, str] | None = None) -> Any:
        return await self._call("GET", path, self._query(query))

    async def _call(self, method: str, path: str, query: dict[str, str], *, json_body: Any = None,
                    headers: dict[str, str] | None = None) -> Any:
        response = await self.api.request(method, path, params=query, json_body=json_body, headers=headers,
                                          ok=(429,))
        if response.status == 429:  # Retry-After, else Vercel's X-RateLimit-Reset (epoch seconds)
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            reset = response.headers.get("X-RateLimit-Reset", "")
            if retry_after is None and reset.isdigit():
                retry_after = max(0.0, int(reset) - self.deps.clock.now().timestamp())
            raise RetryableActionError(f"vercel: {method} {path}: HTTP 429 rate limited", retry_after=retry_after)
        return response.json() if response.text else None

    def _query(self, query: dict[str, str] | None) -> dict[str, str]:
        out = dict(query or {})
        if self.cfg.team_id:
            out["teamId"] = self.cfg.team_id
        return out

    @staticmethod
    def _reason(params: VercelRollbackParams, ctx: StepContext) -> str:
        if params.reason:
            return params.reason
        return f"responder: incident {ctx.incident.id}: {ctx.incident.title}"[:200]
