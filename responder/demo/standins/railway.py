"""RailwayStandIn: Railway's public GraphQL endpoint (`POST /graphql/v2`) with projects, services and deployments.

It reads each request's query text just enough to dispatch it: the operation type, the root field, the
declared variables (required ones must be given) and, for deployments, the fields the query selects
(only those come back, as from a real GraphQL server). It answers in Railway's shapes: `{"data": {...}}`,
or HTTP 200 with `{"data": null, "errors": [...]}` for a bad token ("Not Authorized"), an unknown id, or
an injected error; a malformed request is a 400 with `errors`.

    railway = RailwayStandIn(token="t0k3n-secret")
    api = railway.service("api")                       # id of a new service in railway.project_id
    old = railway.add_deployment("api", status="REMOVED")
    cur = railway.add_deployment("api", status="SUCCESS")
    ...
    railway.mutations == [("deploymentRollback", {"id": old})]
    railway.active("api").meta == railway.deployments[old].meta

Rollback creates a new SUCCESS deployment from the target's snapshot (and removes the active one);
redeploy creates a new deployment in `redeploy_status` (BUILDING: the active one stays in place);
restart counts restarts per deployment and brings a CRASHED deployment back to SUCCESS; `deploy` (the
demo's "railway up") puts a new deployment live in place of the active one.

The test suite's RailwayFake is this class plus fault injection (tests/fakes/railway.py).
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from responder.demo.standins.base import StandIn

__all__ = ["ACTIVE", "STATUSES", "Deployment", "RailwayStandIn"]

STATUSES = frozenset({"BUILDING", "CRASHED", "DEPLOYING", "FAILED", "INITIALIZING", "NEEDS_APPROVAL", "QUEUED",
                      "REMOVED", "REMOVING", "SKIPPED", "SLEEPING", "SUCCESS", "WAITING"})
ACTIVE = ("SUCCESS", "SLEEPING", "CRASHED")
QUERY_FIELDS = {"project", "service", "deployments", "deployment"}
MUTATION_FIELDS = {"deploymentRollback", "deploymentRestart", "deploymentRedeploy"}

_OPERATION = re.compile(r"^\s*(query|mutation)\b\s*(\w+)?\s*(\((?P<vars>[^)]*)\))?\s*\{\s*(?P<root>\w+)", re.S)
_VARIABLE = re.compile(r"\$(\w+)\s*:\s*([\w!\[\]]+)")


@dataclass
class Deployment:
    id: str
    service_id: str
    environment_id: str
    project_id: str
    status: str
    created_at: datetime
    can_rollback: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    def node(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "createdAt": self.created_at.isoformat().replace("+00:00", "Z"),
                "canRollback": self.can_rollback, "serviceId": self.service_id, "environmentId": self.environment_id,
                "projectId": self.project_id, "meta": self.meta, "canRedeploy": True, "deploymentStopped": False,
                "staticUrl": f"{self.id[:8]}.up.railway.app", "url": f"https://{self.id[:8]}.up.railway.app"}


class RailwayStandIn(StandIn):
    name = "railway"

    def __init__(self, *, token: str | None = None, token_header: str = "Authorization", tls: bool = False,
                 environments: tuple[str, ...] = ("production", "staging")) -> None:
        super().__init__(token=token, tls=tls)
        self.token_header = token_header
        self.project_id = str(uuid.uuid4())
        self.project_name = "shop"
        self.services: dict[str, str] = {}  # id -> name
        self.environments: dict[str, str] = {str(uuid.uuid4()): name for name in environments}
        self.deployments: dict[str, Deployment] = {}
        self.mutations: list[tuple[str, dict[str, Any]]] = []
        self.operations: list[str] = []
        self.restarts: dict[str, int] = {}
        self.redeploy_status = "BUILDING"
        self.graphql_faults: deque[tuple[str, str | None, dict[str, str]]] = deque()
        self._clock = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

    # -- state -------------------------------------------------------------------------------------------
    def service(self, name: str) -> str:
        """Id of the service `name` (created on first use)."""
        for sid, existing in self.services.items():
            if existing == name:
                return sid
        sid = str(uuid.uuid4())
        self.services[sid] = name
        return sid

    def environment(self, name: str) -> str:
        return next(eid for eid, existing in self.environments.items() if existing == name)

    def add_deployment(self, service: str, environment: str = "production", *, status: str = "SUCCESS",
                       can_rollback: bool = True, meta: dict[str, Any] | None = None) -> str:
        """A deployment created after every earlier one; returns its id."""
        assert status in STATUSES, status
        self._clock += timedelta(minutes=10)
        dep = Deployment(str(uuid.uuid4()), self.service(service), self.environment(environment), self.project_id,
                         status, self._clock, can_rollback, dict(meta or {}))
        self.deployments[dep.id] = dep
        return dep.id

    def deploy(self, service: str, environment: str = "production", *, meta: dict[str, Any] | None = None) -> str:
        """`railway up`: a new deployment goes live and the active one is removed; returns its id."""
        for dep in self.history(service, environment):
            if dep.status in ACTIVE:
                dep.status = "REMOVED"
        return self.add_deployment(service, environment, meta=meta)

    def history(self, service: str, environment: str = "production") -> list[Deployment]:
        """The service's deployments in the environment, newest first."""
        sid, eid = self.service(service), self.environment(environment)
        return sorted((d for d in self.deployments.values() if d.service_id == sid and d.environment_id == eid),
                      key=lambda d: d.created_at, reverse=True)

    def active(self, service: str, environment: str = "production") -> Deployment | None:
        return next((d for d in self.history(service, environment) if d.status in ACTIVE), None)

    def fail_graphql(self, message: str, *, code: str | None = "INTERNAL_SERVER_ERROR",
                     headers: dict[str, str] | None = None, times: int = 1) -> None:
        """The next GraphQL request(s) answer HTTP 200 with this error in `errors`."""
        for _ in range(times):
            self.graphql_faults.append((message, code, dict(headers or {})))

    # -- HTTP --------------------------------------------------------------------------------------------
    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/graphql/v2", self._graphql)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/graphql/v2"

    def authorized(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        expected = f"Bearer {self.token}" if self.token_header == "Authorization" else self.token
        return request.headers.get(self.token_header) == expected

    def unauthorized(self) -> web.Response:
        # Railway answers a bad token with HTTP 200 and a GraphQL error
        return _errors("Not Authorized", status=200)

    async def _graphql(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _errors("POST body missing, invalid Content-Type, or JSON object has no keys.", status=400)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return _errors("GraphQL operations must contain a non-empty `query`.", status=400)
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            return _errors("Variables must be provided as an Object where each property is a variable value.",
                           status=400)
        query: str = body["query"]
        match = _OPERATION.match(query)
        if match is None:
            return _errors("Syntax Error: Unexpected token.", status=400, code="GRAPHQL_PARSE_FAILED")
        kind, root = match.group(1), match.group("root")
        allowed = QUERY_FIELDS if kind == "query" else MUTATION_FIELDS
        if root not in allowed:
            return _errors(f'Cannot query field "{root}" on type "{kind.capitalize()}".', status=400,
                           code="GRAPHQL_VALIDATION_FAILED")
        for name, type_ in _VARIABLE.findall(match.group("vars") or ""):
            if type_.endswith("!") and variables.get(name) is None:
                return _errors(f'Variable "${name}" of required type "{type_}" was not provided.', status=400,
                               code="BAD_USER_INPUT")
        self.operations.append(root)
        if self.graphql_faults:
            message, code, headers = self.graphql_faults.popleft()
            return _errors(message, status=200, code=code, path=root, headers=headers)
        handler = getattr(self, f"_op_{root}")
        result: web.Response = handler(query, variables)
        return result

    # -- operations --------------------------------------------------------------------------------------
    def _op_project(self, query: str, variables: dict[str, Any]) -> web.Response:
        if variables["id"] != self.project_id:
            return _errors("Project not found", path="project")
        return _data({"project": {
            "id": self.project_id, "name": self.project_name,
            "services": {"edges": [{"node": {"id": i, "name": n}} for i, n in self.services.items()]},
            "environments": {"edges": [{"node": {"id": i, "name": n}} for i, n in self.environments.items()]}}})

    def _op_service(self, query: str, variables: dict[str, Any]) -> web.Response:
        sid = variables["id"]
        if sid not in self.services:
            return _errors("Service not found", path="service")
        return _data({"service": {"id": sid, "name": self.services[sid], "projectId": self.project_id}})

    def _op_deployments(self, query: str, variables: dict[str, Any]) -> web.Response:
        raw = _argument_value(query, "input", variables)
        if not isinstance(raw, dict):
            return _errors('Variable "$input" got invalid value; expected type "DeploymentListInput".', status=400,
                           code="BAD_USER_INPUT")
        unknown = set(raw) - {"projectId", "serviceId", "environmentId", "status", "includeDeleted"}
        status = raw.get("status") or {}
        wanted = status.get("in") if isinstance(status, dict) else None
        unwanted = status.get("notIn") if isinstance(status, dict) else None
        bad = [s for s in [*(wanted or []), *(unwanted or [])] if s not in STATUSES]
        if unknown or not isinstance(status, dict) or set(status) - {"in", "notIn"} or bad:
            return _errors(f"invalid DeploymentListInput: {sorted(unknown) or bad or status}", status=400,
                           code="BAD_USER_INPUT")
        first = _argument_value(query, "first", variables)
        items = sorted(self.deployments.values(), key=lambda d: d.created_at, reverse=True)
        items = [d for d in items
                 if all(raw.get(key) in (None, value) for key, value in
                        (("projectId", d.project_id), ("serviceId", d.service_id),
                         ("environmentId", d.environment_id)))
                 and (wanted is None or d.status in wanted) and (unwanted is None or d.status not in unwanted)]
        if isinstance(first, int):
            items = items[:first]
        fields = _selection(query, "node")
        return _data({"deployments": {"edges": [{"node": _only(d.node(), fields)} for d in items]}})

    def _op_deployment(self, query: str, variables: dict[str, Any]) -> web.Response:
        dep = self.deployments.get(variables["id"])
        if dep is None:
            return _errors("Deployment not found", path="deployment")
        return _data({"deployment": _only(dep.node(), _selection(query, "deployment"))})

    def _op_deploymentRollback(self, query: str, variables: dict[str, Any]) -> web.Response:
        self.mutations.append(("deploymentRollback", dict(variables)))
        target = self.deployments.get(variables["id"])
        if target is None:
            return _errors("Deployment not found", path="deploymentRollback")
        if not target.can_rollback:
            return _errors("Cannot rollback to this deployment", path="deploymentRollback")
        self._replace_active(target, "SUCCESS")
        return _data({"deploymentRollback": True})

    def _op_deploymentRestart(self, query: str, variables: dict[str, Any]) -> web.Response:
        self.mutations.append(("deploymentRestart", dict(variables)))
        dep = self.deployments.get(variables["id"])
        if dep is None:
            return _errors("Deployment not found", path="deploymentRestart")
        self.restarts[dep.id] = self.restarts.get(dep.id, 0) + 1
        if dep.status == "CRASHED":
            dep.status = "SUCCESS"
        return _data({"deploymentRestart": True})

    def _op_deploymentRedeploy(self, query: str, variables: dict[str, Any]) -> web.Response:
        self.mutations.append(("deploymentRedeploy", dict(variables)))
        source = self.deployments.get(variables["id"])
        if source is None:
            return _errors("Deployment not found", path="deploymentRedeploy")
        new = self._replace_active(source, self.redeploy_status)
        return _data({"deploymentRedeploy": _only(new.node(), _selection(query, "deploymentRedeploy"))})

    def _replace_active(self, source: Deployment, status: str) -> Deployment:
        """A new deployment from `source`'s snapshot; when it is live, the active one is removed."""
        self._clock += timedelta(minutes=10)
        new = Deployment(str(uuid.uuid4()), source.service_id, source.environment_id, source.project_id, status,
                             self._clock, True, dict(source.meta))
        if status in ACTIVE:
            for dep in self.deployments.values():
                if (dep.service_id, dep.environment_id) == (source.service_id, source.environment_id) \
                        and dep.status in ACTIVE:
                    dep.status = "REMOVED"
        self.deployments[new.id] = new
        return new


def _data(data: dict[str, Any]) -> web.Response:
    return web.json_response({"data": data})


def _errors(message: str, *, status: int = 200, code: str | None = "INTERNAL_SERVER_ERROR", path: str | None = None,
            headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"message": message, "locations": [{"line": 1, "column": 1}]}
    if path:
        error["path"] = [path]
    if code:
        error["extensions"] = {"code": code}
    return web.json_response({"data": None, "errors": [error]}, status=status, headers=headers)


def _argument_value(query: str, name: str, variables: dict[str, Any]) -> Any:
    """The value of root-field argument `name`: a `$variable` reference, or an integer literal."""
    match = re.search(rf"\b{name}\s*:\s*(\$\w+|\d+)", query)
    if match is None:
        return None
    token = match.group(1)
    return variables.get(token[1:]) if token.startswith("$") else int(token)


def _selection(query: str, anchor: str) -> set[str]:
    """Field names selected directly inside `anchor { ... }` (or `anchor(...) { ... }`)."""
    match = re.search(rf"\b{anchor}\s*(\([^)]*\))?\s*\{{([^{{}}]*)\}}", query)
    return set(re.findall(r"\w+", match.group(2))) if match else set()


def _only(node: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k in fields}
