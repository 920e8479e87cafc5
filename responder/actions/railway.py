"""railway: roll back, restart or redeploy a service through Railway's public GraphQL API.

Every call is one `POST https://backboard.railway.com/graphql/v2` with `{"query", "variables"}`.
Railway answers most failures as HTTP 200 with an `errors` array; those are classified here:
"Not Authorized" (a bad token, or one without access to the project) is permanent with a pointer to
`providers.railway`, a rate-limit error is retryable (honouring Retry-After), anything else is
permanent. HTTP-level failures (network, timeout, 5xx, 429, 401/403) are classified by `VendorApi`.

Targets. `service` and `environment` are names or ids. Names are resolved through the project
(`providers.railway.project_id`): one `project` query lists its services and environments. Without a
project id, `service` must be an id; an environment name is then resolved through the service's
project (`service` query, then `project`). Railway ids are UUIDs, which is how the two are told apart.

Which deployment. Deployments of the service in the environment are listed newest first
(`deployments(input: {serviceId, environmentId, status: {in: [...]}})`):
- the *active* deployment is the newest one that is SUCCESS, SLEEPING or CRASHED (a crashed
  deployment is still the one in place: restarting it is Railway's own remedy);
- `railway.rollback` picks the newest deployment created before the active one that has run
  successfully (SUCCESS or SLEEPING, or REMOVED: replaced by a later deployment) and that Railway
  offers as a rollback target (`canRollback`), never the active one itself. With `deployment_id` it
  checks that deployment belongs to the same service and environment and can be rolled back to.
  The rollback is `deploymentRollback(id)`, which restores that deployment's image and variables.
- `railway.restart` restarts the active deployment (`deploymentRestart`, no rebuild);
- `railway.redeploy` redeploys it (`deploymentRedeploy`, a new deployment from the same source).

Retries. The runner may call the same step again after a lost response. The rollback target chosen
by the first attempt is kept in the incident's provider state under the step's idempotency key and
reused, so a retry never "rolls back" onto the deployment the first attempt replaced. Every mutation
carries `Idempotency-Key` (Railway does not document one; it is harmless).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

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
from responder.config.base import StrictModel
from responder.errors import ActionError, PermanentActionError, RetryableActionError
from responder.logs import redact_text

__all__ = [
    "RailwayConfig",
    "RailwayProvider",
    "RailwayRedeployParams",
    "RailwayRestartParams",
    "RailwayRollbackParams",
]

RAILWAY_API = "https://backboard.railway.com/graphql/v2"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)

#: statuses of the deployment in place (serving, asleep, or crashed and waiting for a restart)
ACTIVE = ("SUCCESS", "SLEEPING", "CRASHED")
#: statuses of a deployment that ran successfully (REMOVED: replaced by a later one)
RAN_OK = ("SUCCESS", "SLEEPING", "REMOVED")
#: how many recent deployments are looked at
HISTORY = 25

PROJECT_QUERY = (
    "query Project($id: String!) { project(id: $id) { id name "
    "services { edges { node { id name } } } environments { edges { node { id name } } } } }"
)
SERVICE_QUERY = "query Service($id: String!) { service(id: $id) { id name projectId } }"
DEPLOYMENTS_QUERY = (
    "query Deployments($input: DeploymentListInput!, $first: Int) { deployments(input: $input, first: $first) "
    "{ edges { node { id status createdAt canRollback serviceId environmentId } } } }"
)
DEPLOYMENT_QUERY = (
    "query Deployment($id: String!) { deployment(id: $id) "
    "{ id status createdAt canRollback serviceId environmentId } }"
)
ROLLBACK_MUTATION = "mutation DeploymentRollback($id: String!) { deploymentRollback(id: $id) }"
RESTART_MUTATION = "mutation DeploymentRestart($id: String!) { deploymentRestart(id: $id) }"
REDEPLOY_MUTATION = (
    "mutation DeploymentRedeploy($id: String!, $usePreviousImageTag: Boolean) "
    "{ deploymentRedeploy(id: $id, usePreviousImageTag: $usePreviousImageTag) { id status } }"
)

_TOKEN_HEADERS = {"account": "Authorization", "team": "Team-Access-Token", "project": "Project-Access-Token"}


class RailwayConfig(VendorConfig):
    token: SecretStr | None = Field(default=None, description="Railway API token (account or team token)")
    token_type: Literal["account", "team", "project"] = Field(
        default="account",
        description="account (also workspace/OAuth) tokens go in Authorization: Bearer; team tokens in "
                    "Team-Access-Token; project tokens in Project-Access-Token")
    project_id: str | None = Field(default=None,
                                   description="Railway project whose service and environment names steps may use")
    base_url: str | None = Field(default=RAILWAY_API, description="GraphQL endpoint (override for tests or proxies)")


class _Target(StrictModel):
    service: str = Field(min_length=1, description="service name (resolved through providers.railway.project_id) "
                                                   "or service id")
    environment: str = Field(default="production", min_length=1, description="environment name or id")


class RailwayRollbackParams(_Target):
    deployment_id: str | None = Field(default=None, description="roll back to this deployment instead of the "
                                                                "previous successful one")


class RailwayRestartParams(_Target):
    pass


class RailwayRedeployParams(_Target):
    use_previous_image: bool = Field(default=False, description="reuse the deployment's built image instead of "
                                                                "building it again")


@dataclass(frozen=True)
class _Resolved:
    service_id: str
    service: str
    environment_id: str
    environment: str
    project_id: str | None

    @property
    def label(self) -> str:
        return f"{self.service} ({self.environment})"


@dataclass(frozen=True)
class _Deployment:
    id: str
    status: str
    created_at: datetime | None
    can_rollback: bool
    service_id: str | None = None
    environment_id: str | None = None

    @classmethod
    def parse(cls, node: Any) -> _Deployment:
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            raise PermanentActionError(f"railway: unexpected deployment in the response: {str(node)[:120]}")
        return cls(node["id"], str(node.get("status", "")), _timestamp(node.get("createdAt")),
                   node.get("canRollback") is not False, node.get("serviceId"), node.get("environmentId"))


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def short(deployment_id: str) -> str:
    return deployment_id if len(deployment_id) <= 8 else f"{deployment_id[:8]}…"


def active(deployments: list[_Deployment]) -> _Deployment | None:
    """The deployment in place: the newest SUCCESS, SLEEPING or CRASHED one (the list is newest first)."""
    return next((d for d in deployments if d.status in ACTIVE), None)


def previous_successful(deployments: list[_Deployment], current: _Deployment | None) -> _Deployment | None:
    """The newest deployment older than `current` that ran successfully and can be rolled back to."""
    older = deployments[deployments.index(current) + 1:] if current is not None else deployments
    return next((d for d in older if d.status in RAN_OK and d.can_rollback
                 and (current is None or d.id != current.id)), None)


def _newest_first(deployments: list[_Deployment]) -> list[_Deployment]:
    # Railway lists newest first; sort anyway (stable, so equal or missing timestamps keep the API order)
    if all(d.created_at is not None for d in deployments):
        return sorted(deployments, key=lambda d: d.created_at or datetime.min, reverse=True)
    return deployments


class RailwayProvider(ActionProvider):
    name = "railway"
    Config = RailwayConfig
    actions = {"rollback": RailwayRollbackParams, "restart": RailwayRestartParams,
               "redeploy": RailwayRedeployParams}

    def __init__(self, config: StrictModel | None, deps: ProviderDeps) -> None:
        super().__init__(config, deps)
        cfg = config if isinstance(config, RailwayConfig) else RailwayConfig()
        self.cfg = cfg
        self.endpoint = cfg.base_url or RAILWAY_API
        self.token_header = _TOKEN_HEADERS[cfg.token_type]
        token = cfg.token.get_secret_value() if cfg.token else ""
        headers: dict[str, str] = {}
        if token:
            headers[self.token_header] = f"Bearer {token}" if cfg.token_type == "account" else token
        self.api = VendorApi(self.name, deps.http, self.endpoint, headers=headers, secrets=cfg.secrets(),
                             timeout=cfg.timeout)

    # -- budget and dry-run ----------------------------------------------------------------------------
    def remediation(self, verb: str, params: StrictModel) -> Remediation | None:
        assert isinstance(params, _Target)
        return Remediation(kind=verb, target=f"railway:{params.service}@{params.environment}")

    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        assert isinstance(params, _Target)
        calls = self._plan_resolve(params)
        service_id = params.service if _is_id(params.service) else f"<id of service {params.service}>"
        environment_id = (params.environment if _is_id(params.environment)
                          else f"<id of environment {params.environment}>")
        statuses = list(dict.fromkeys(ACTIVE + RAN_OK)) if verb == "rollback" else list(ACTIVE)
        list_input: dict[str, Any] = {"serviceId": service_id, "environmentId": environment_id,
                                      "status": {"in": statuses}}
        if self.cfg.project_id:
            list_input["projectId"] = self.cfg.project_id
        what = "the active and the previous successful deployment" if verb == "rollback" else "the active deployment"
        calls.append(self._planned(DEPLOYMENTS_QUERY, {"input": list_input, "first": HISTORY}, f"find {what}"))
        if isinstance(params, RailwayRollbackParams):
            if params.deployment_id:
                calls.append(self._planned(DEPLOYMENT_QUERY, {"id": params.deployment_id},
                                           "check the deployment belongs to the service and can be rolled back to"))
                target = params.deployment_id
            else:
                target = "<previous successful deployment>"
            calls.append(self._planned(ROLLBACK_MUTATION, {"id": target}, "roll back to that deployment",
                                       ctx.idempotency_key))
        elif isinstance(params, RailwayRedeployParams):
            calls.append(self._planned(REDEPLOY_MUTATION, {"id": "<active deployment>",
                                                           "usePreviousImageTag": params.use_previous_image},
                                       "redeploy the active deployment", ctx.idempotency_key))
        else:
            calls.append(self._planned(RESTART_MUTATION, {"id": "<active deployment>"},
                                       "restart the active deployment", ctx.idempotency_key))
        return calls

    def _plan_resolve(self, params: _Target) -> list[PlannedCall]:
        if self.cfg.project_id:
            return [self._planned(PROJECT_QUERY, {"id": self.cfg.project_id},
                                  f"resolve service {params.service!r} and environment {params.environment!r} "
                                  "in the project")]
        if not _is_id(params.service):
            return [self._planned(PROJECT_QUERY, {"id": "<providers.railway.project_id>"},
                                  f"service {params.service!r} is a name: providers.railway.project_id is needed "
                                  "to resolve it (a real run fails without it)")]
        if _is_id(params.environment):
            return []
        return [self._planned(SERVICE_QUERY, {"id": params.service}, "find the service's project"),
                self._planned(PROJECT_QUERY, {"id": "<project of the service>"},
                              f"resolve environment {params.environment!r} to its id")]

    def _planned(self, query: str, variables: dict[str, Any], note: str, idempotency_key: str | None = None
                 ) -> PlannedCall:
        headers = {self.token_header: "***", "Content-Type": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return PlannedCall("POST", self.endpoint, {"query": query, "variables": variables}, headers, note)

    # -- run ---------------------------------------------------------------------------------------------
    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        assert isinstance(params, _Target)
        target = await self._resolve(params)
        if isinstance(params, RailwayRollbackParams):
            return await self._rollback(target, params, ctx)
        current = active(await self._deployments(target, ACTIVE))
        if current is None:
            raise PermanentActionError(f"railway: {target.label} has no active deployment to {verb} "
                                       f"(none is {', '.join(ACTIVE)})")
        base = {"service": target.service, "service_id": target.service_id, "environment": target.environment,
                "environment_id": target.environment_id}
        if isinstance(params, RailwayRedeployParams):
            data = await self._graphql("deploymentRedeploy", REDEPLOY_MUTATION,
                                       {"id": current.id, "usePreviousImageTag": params.use_previous_image},
                                       ctx.idempotency_key)
            new = data.get("deploymentRedeploy")
            if not isinstance(new, dict) or not isinstance(new.get("id"), str):
                raise PermanentActionError(f"railway: deploymentRedeploy returned no deployment: {str(new)[:120]}")
            return ActionResult(f"redeployed {target.label}: new deployment {short(new['id'])} from "
                                f"{short(current.id)}",
                                {**base, "deployment_id": new["id"], "from_deployment_id": current.id,
                                 "status": new.get("status")})
        data = await self._graphql("deploymentRestart", RESTART_MUTATION, {"id": current.id}, ctx.idempotency_key)
        if data.get("deploymentRestart") is not True:
            raise PermanentActionError(f"railway: Railway did not restart deployment {current.id} "
                                       f"(deploymentRestart returned {data.get('deploymentRestart')!r})")
        return ActionResult(f"restarted {target.label} deployment {short(current.id)} ({current.status.lower()})",
                            {**base, "deployment_id": current.id, "previous_status": current.status})

    async def _rollback(self, target: _Resolved, params: RailwayRollbackParams, ctx: StepContext) -> ActionResult:
        deployments = await self._deployments(target, tuple(dict.fromkeys(ACTIVE + RAN_OK)))
        current = active(deployments)
        field = f"rollback:{ctx.idempotency_key}"
        remembered = (await self.deps.state.get(ctx.incident.id, self.name)).get(field)
        base = {"service": target.service, "service_id": target.service_id, "environment": target.environment,
                "environment_id": target.environment_id}
        if remembered:  # a retry of this step: keep the first attempt's choice
            prior = json.loads(remembered)
            from_id, to_id = prior.get("from"), str(prior["to"])
            if current is not None and current.id == to_id:
                return ActionResult(f"{target.label} already runs deployment {short(to_id)} (rolled back by an "
                                    "earlier attempt)", {**base, "from_deployment_id": from_id,
                                                         "to_deployment_id": to_id})
        else:
            from_id = current.id if current else None
            to_id = await self._choose(target, params, deployments, current)
            await self.deps.state.set(ctx.incident.id, self.name, **{field: json.dumps({"from": from_id,
                                                                                          "to": to_id})})
        data = await self._graphql("deploymentRollback", ROLLBACK_MUTATION, {"id": to_id}, ctx.idempotency_key)
        if data.get("deploymentRollback") is not True:
            raise PermanentActionError(f"railway: Railway did not roll back to deployment {to_id} "
                                       f"(deploymentRollback returned {data.get('deploymentRollback')!r})")
        was = f" (was {short(from_id)})" if from_id else ""
        return ActionResult(f"rolled back {target.label} to deployment {short(to_id)}{was}",
                            {**base, "from_deployment_id": from_id, "to_deployment_id": to_id})

    async def _choose(self, target: _Resolved, params: RailwayRollbackParams, deployments: list[_Deployment],
                      current: _Deployment | None) -> str:
        if params.deployment_id:
            data = await self._graphql("deployment", DEPLOYMENT_QUERY, {"id": params.deployment_id})
            wanted = _Deployment.parse(data.get("deployment"))
            if (wanted.service_id, wanted.environment_id) != (target.service_id, target.environment_id):
                raise PermanentActionError(f"railway: deployment {wanted.id} is not a deployment of {target.label}")
            if current is not None and wanted.id == current.id:
                raise PermanentActionError(f"railway: deployment {wanted.id} is already the active deployment of "
                                           f"{target.label}; nothing to roll back")
            if not wanted.can_rollback:
                raise PermanentActionError(f"railway: Railway cannot roll back to deployment {wanted.id} "
                                           f"({wanted.status}, canRollback is false: older than the plan's "
                                           "retention, or never built)")
            return wanted.id
        chosen = previous_successful(deployments, current)
        if chosen is None:
            active_text = f"active: {short(current.id)}" if current else "no active deployment"
            raise PermanentActionError(f"railway: no previous successful deployment of {target.label} to roll back "
                                       f"to ({active_text}; looked at the {len(deployments)} most recent "
                                       "deployments); give deployment_id to choose one")
        return chosen.id

    # -- lookups -----------------------------------------------------------------------------------------
    async def _resolve(self, params: _Target) -> _Resolved:
        project_id = self.cfg.project_id
        if not project_id:
            if not _is_id(params.service):
                raise PermanentActionError(f"railway: service {params.service!r} is a name; set "
                                           "providers.railway.project_id so names can be resolved, or give the "
                                           "service id")
            if _is_id(params.environment):
                return _Resolved(params.service, params.service, params.environment, params.environment, None)
            service = (await self._graphql("service", SERVICE_QUERY, {"id": params.service})).get("service")
            if not isinstance(service, dict) or not isinstance(service.get("projectId"), str):
                raise PermanentActionError(f"railway: service {params.service} was not found")
            project_id = service["projectId"]
        project = (await self._graphql("project", PROJECT_QUERY, {"id": project_id})).get("project")
        if not isinstance(project, dict):
            raise PermanentActionError(f"railway: project {project_id} was not found")
        service_id, service_name = _pick("service", params.service, _nodes(project.get("services")), project_id)
        env_id, env_name = _pick("environment", params.environment, _nodes(project.get("environments")), project_id)
        return _Resolved(service_id, service_name, env_id, env_name, project_id)

    async def _deployments(self, target: _Resolved, statuses: tuple[str, ...]) -> list[_Deployment]:
        list_input: dict[str, Any] = {"serviceId": target.service_id, "environmentId": target.environment_id,
                                      "status": {"in": list(statuses)}}
        if target.project_id:
            list_input["projectId"] = target.project_id
        data = await self._graphql("deployments", DEPLOYMENTS_QUERY, {"input": list_input, "first": HISTORY})
        return _newest_first([_Deployment.parse(node) for node in _nodes(data.get("deployments"))])

    async def _graphql(self, operation: str, query: str, variables: dict[str, Any],
                       idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self.api.request("POST", self.endpoint, json_body={"query": query, "variables": variables},
                                          headers=headers)
        body = response.json()
        if not isinstance(body, dict):
            raise PermanentActionError(f"railway: {operation}: unexpected response: {response.text[:120]!r}")
        errors = body.get("errors")
        if errors:
            raise self._classify(operation, errors, response.headers.get("Retry-After"))
        data = body.get("data")
        if not isinstance(data, dict):
            raise PermanentActionError(f"railway: {operation}: response without data")
        return data

    def _classify(self, operation: str, errors: Any, retry_after: str | None) -> ActionError:
        """A 200 with `errors`: Not Authorized -> permanent, rate limit -> retryable, anything else permanent."""
        items = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
        messages = [str(e.get("message", "")) for e in items] or [str(errors)[:200]]
        codes = {str((e.get("extensions") or {}).get("code", "")).upper() for e in items
                 if isinstance(e.get("extensions"), dict)}
        text = redact_text("; ".join(messages), self.secrets())[:300]
        lowered = text.lower()
        if ("not authorized" in lowered or "unauthorized" in lowered or "invalid token" in lowered
                or codes & {"UNAUTHENTICATED", "UNAUTHORIZED", "FORBIDDEN"}):
            return PermanentActionError(f"railway: {operation}: {text} — the token was refused or cannot reach this "
                                        f"project (check providers.railway token, token_type and project_id in "
                                        "responder.yaml)")
        if ("rate limit" in lowered or "too many requests" in lowered
                or codes & {"RATE_LIMITED", "RATE_LIMIT_EXCEEDED", "TOO_MANY_REQUESTS"}):
            return RetryableActionError(f"railway: {operation}: rate limited: {text}",
                                        retry_after=retry_after_seconds(retry_after))
        return PermanentActionError(f"railway: {operation}: {text}")


def _is_id(value: str) -> bool:
    return bool(_UUID.match(value))


def _nodes(connection: Any) -> list[Any]:
    """`{edges: [{node: ...}]}` -> [node, ...]."""
    edges = connection.get("edges") if isinstance(connection, dict) else None
    if not isinstance(edges, list):
        return []
    return [edge.get("node") for edge in edges if isinstance(edge, dict) and edge.get("node") is not None]


def _pick(kind: str, wanted: str, nodes: list[Any], project_id: str) -> tuple[str, str]:
    """Find a service or environment by id, exact name, or name ignoring case."""
    items = [(str(n.get("id")), str(n.get("name"))) for n in nodes if isinstance(n, dict)]
    for matches in ((i for i in items if i[0] == wanted), (i for i in items if i[1] == wanted),
                    (i for i in items if i[1].lower() == wanted.lower())):
        found = next(matches, None)
        if found:
            return found
    known = ", ".join(sorted(name for _, name in items)) or "none"
    raise PermanentActionError(f"railway: no {kind} {wanted!r} in project {project_id} ({kind}s: {known})")
