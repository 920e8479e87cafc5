"""VercelFake: the Vercel REST endpoints behind instant rollback and promote, with projects and deployments.

- `GET /v9/projects/{idOrName}`: the project with `targets.production` (the deployment serving production)
  and `lastAliasRequest` (the last rollback/promote job);
- `GET /v6/deployments`: `{"deployments": [...], "pagination": {...}}`, newest first, filtered by
  `projectId` (id or name), `target`, `state` (comma-separated), `limit`;
- `GET /v13/deployments/{idOrUrl}`: one deployment by id or URL host;
- `POST /v1/projects/{projectId}/rollback/{deploymentId}` (201) and `POST /v10/projects/{projectId}/promote/
  {deploymentId}` (201, or 202 with `promote_status = 202`): production now serves that deployment and
  `lastAliasRequest` records the job with `job_status` (default "succeeded"; "in-progress" leaves production
  where it is until `finish_job()`).

Errors come in Vercel's shape `{"error": {"code", "message"}}`. With `team_id` set, every request must carry
`?teamId=` (else 404, as Vercel answers for a project outside the scope). A bad token is a 403 with
`invalidToken: true`.

    fake = VercelFake(token="vc-secret")
    old = fake.add_deployment("checkout")          # READY production deployments, oldest first
    cur = fake.add_deployment("checkout", current=True)
    ...
    fake.current("checkout") == old; fake.changes == [("rollback", project_id, old, {"description": ...})]
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.vendor import FakeVendor

__all__ = ["FakeProject", "VercelFake"]

STATES = frozenset({"BUILDING", "ERROR", "INITIALIZING", "QUEUED", "READY", "CANCELED", "DELETED"})


@dataclass
class FakeProject:
    id: str
    name: str
    current: str | None = None
    last_alias_request: dict[str, Any] | None = None


@dataclass
class FakeDeployment:
    uid: str
    project_id: str
    name: str
    url: str
    created: int
    state: str = "READY"
    target: str | None = "production"
    ready_substate: str | None = "PROMOTED"
    rollback_candidate: bool = True
    meta: dict[str, str] = field(default_factory=dict)

    def listed(self) -> dict[str, Any]:
        """The shape of an item of GET /v6/deployments."""
        return {"uid": self.uid, "name": self.name, "projectId": self.project_id, "url": self.url,
                "created": self.created, "createdAt": self.created, "buildingAt": self.created + 1000,
                "ready": self.created + 60_000 if self.state == "READY" else None, "source": "git",
                "state": self.state, "readyState": self.state, "readySubstate": self.ready_substate,
                "type": "LAMBDAS", "creator": {"uid": "usr_1", "username": "dev"}, "meta": self.meta,
                "target": self.target, "aliasError": None, "aliasAssigned": self.created + 61_000,
                "isRollbackCandidate": self.rollback_candidate,
                "inspectorUrl": f"https://vercel.com/acme/{self.name}/{self.uid[4:]}"}

    def detail(self) -> dict[str, Any]:
        """The shape of GET /v13/deployments/{idOrUrl} (the fields that matter here)."""
        return {"id": self.uid, "name": self.name, "projectId": self.project_id, "url": self.url,
                "createdAt": self.created, "readyState": self.state, "status": self.state,
                "readySubstate": self.ready_substate, "target": self.target, "meta": self.meta,
                "type": "LAMBDAS", "version": 2, "public": False, "regions": ["iad1"],
                "creator": {"uid": "usr_1", "username": "dev"}, "alias": [], "aliasAssigned": True,
                "inspectorUrl": f"https://vercel.com/acme/{self.name}/{self.uid[4:]}"}


class VercelFake(FakeVendor):
    name = "vercel"

    def __init__(self, *, token: str | None = None, team_id: str | None = None, tls: bool = False) -> None:
        super().__init__(token=token, tls=tls)
        self.team_id = team_id
        self.projects: dict[str, FakeProject] = {}
        self.deployments: dict[str, FakeDeployment] = {}
        self.changes: list[tuple[str, str, str, dict[str, str]]] = []
        self.job_status = "succeeded"
        self.promote_status = 201
        self.now_ms = 1_767_225_600_000  # 2026-01-01T00:00:00Z

    # -- state -------------------------------------------------------------------------------------------
    def project(self, name: str) -> FakeProject:
        """The project `name` (created on first use)."""
        for project in self.projects.values():
            if project.name == name:
                return project
        project = FakeProject("prj_" + secrets.token_hex(10), name)
        self.projects[project.id] = project
        return project

    def add_deployment(self, project: str, *, state: str = "READY", target: str | None = "production",
                       current: bool = False, rollback_candidate: bool = True, staged: bool = False,
                       meta: dict[str, str] | None = None) -> str:
        """A deployment created after every earlier one; `current=True` makes it serve production."""
        assert state in STATES, state
        self.now_ms += 600_000
        proj = self.project(project)
        uid = "dpl_" + secrets.token_hex(12)
        dep = FakeDeployment(uid, proj.id, project, f"{project}-{uid[4:13]}-acme.vercel.app", self.now_ms, state,
                             target, "STAGED" if staged else ("PROMOTED" if state == "READY" else None),
                             rollback_candidate, dict(meta or {}))
        self.deployments[uid] = dep
        if current:
            proj.current = uid
        return uid

    def current(self, project: str) -> str | None:
        return self.project(project).current

    def finish_job(self, project: str, status: str = "succeeded") -> None:
        """Complete an in-progress alias job."""
        proj = self.project(project)
        assert proj.last_alias_request is not None
        proj.last_alias_request["jobStatus"] = status
        if status == "succeeded":
            proj.current = proj.last_alias_request["toDeploymentId"]

    # -- HTTP --------------------------------------------------------------------------------------------
    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v9/projects/{idOrName}", self._get_project)
        router.add_get("/v6/deployments", self._list_deployments)
        router.add_get("/v13/deployments/{idOrUrl}", self._get_deployment)
        router.add_post("/v1/projects/{projectId}/rollback/{deploymentId}", self._rollback)
        router.add_post("/v10/projects/{projectId}/promote/{deploymentId}", self._promote)

    def unauthorized(self) -> web.Response:
        return _error(403, "forbidden", "Not authorized", invalidToken=True)

    def _scope_error(self, request: web.Request) -> web.Response | None:
        team = request.query.get("teamId")
        if self.team_id is not None and team != self.team_id:
            return _error(404, "not_found", "Project not found")
        if self.team_id is None and team is not None:
            return _error(403, "forbidden", "You don't have permission to access this team")
        return None

    def _find_project(self, id_or_name: str) -> FakeProject | None:
        return self.projects.get(id_or_name) or next((p for p in self.projects.values() if p.name == id_or_name),
                                                     None)

    async def _get_project(self, request: web.Request) -> web.Response:
        if (denied := self._scope_error(request)) is not None:
            return denied
        project = self._find_project(request.match_info["idOrName"])
        if project is None:
            return _error(404, "not_found", "Project not found")
        production = self.deployments.get(project.current) if project.current else None
        targets = {"production": {**production.detail(), "alias": [f"{project.name}.example.com"]}} \
            if production else {}
        return web.json_response({
            "id": project.id, "name": project.name, "accountId": self.team_id or "usr_1", "framework": "nextjs",
            "nodeVersion": "22.x", "directoryListing": False, "createdAt": 1_700_000_000_000,
            "updatedAt": self.now_ms, "targets": targets, "lastAliasRequest": project.last_alias_request,
            "latestDeployments": [d.detail() for d in self._of(project)][:5]})

    async def _list_deployments(self, request: web.Request) -> web.Response:
        if (denied := self._scope_error(request)) is not None:
            return denied
        query = request.query
        limit = query.get("limit", "20")
        states = [s for s in query.get("state", "").split(",") if s]
        if not limit.isdigit() or not 1 <= int(limit) <= 100 or any(s not in STATES for s in states):
            return _error(400, "bad_request", "Invalid request: `limit` or `state` has an invalid value")
        items = list(self.deployments.values())
        if "projectId" in query:
            project = self._find_project(query["projectId"])
            items = [d for d in items if project is not None and d.project_id == project.id]
        if "target" in query:
            items = [d for d in items if d.target == query["target"]]
        if states:
            items = [d for d in items if d.state in states]
        items.sort(key=lambda d: d.created, reverse=True)
        page = items[:int(limit)]
        return web.json_response({"deployments": [d.listed() for d in page], "pagination": {
            "count": len(page), "next": page[-1].created if len(items) > len(page) else None, "prev": None}})

    async def _get_deployment(self, request: web.Request) -> web.Response:
        if (denied := self._scope_error(request)) is not None:
            return denied
        key = request.match_info["idOrUrl"]
        dep = self.deployments.get(key) or next((d for d in self.deployments.values() if d.url == key), None)
        if dep is None:
            return _error(404, "not_found", "The deployment could not be found.")
        return web.json_response(dep.detail())

    async def _rollback(self, request: web.Request) -> web.Response:
        return await self._alias(request, "rollback", 201)

    async def _promote(self, request: web.Request) -> web.Response:
        return await self._alias(request, "promote", self.promote_status)

    async def _alias(self, request: web.Request, kind: str, status: int) -> web.Response:
        if (denied := self._scope_error(request)) is not None:
            return denied
        text = await request.text()
        if text:
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return _error(400, "bad_request", "Invalid request body: must be a JSON object")
        project = self._find_project(request.match_info["projectId"])
        dep = self.deployments.get(request.match_info["deploymentId"])
        if project is None:
            return _error(404, "not_found", "Project not found")
        if dep is None or dep.project_id != project.id:
            return _error(404, "not_found", "Deployment not found")
        if dep.state != "READY" or dep.target != "production":
            return _error(400, "bad_request", f"Deployment {dep.uid} cannot be used for {kind}")
        if project.current == dep.uid:
            return _error(409, "conflict", f"Deployment {dep.uid} is already the current production deployment")
        job = project.last_alias_request
        if job is not None and job["jobStatus"] in ("pending", "in-progress"):
            return _error(409, "conflict", "Another rollback or promote is in progress")
        self.changes.append((kind, project.id, dep.uid, {k: v for k, v in request.query.items() if k != "teamId"}))
        project.last_alias_request = {"fromDeploymentId": project.current, "toDeploymentId": dep.uid,
                                      "jobStatus": self.job_status, "requestedAt": self.now_ms, "type": kind}
        if self.job_status == "succeeded":
            project.current = dep.uid
        return web.json_response({}, status=status)

    def _of(self, project: FakeProject) -> list[FakeDeployment]:
        return sorted((d for d in self.deployments.values() if d.project_id == project.id), key=lambda d: d.created,
                      reverse=True)


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)
