"""kubernetes: rollout restart, rollout undo and scale of a Deployment, talking to the API server over HTTP.

No Kubernetes client library: three REST calls at most, sent through `VendorApi` with an `ssl.SSLContext`
built from the cluster's CA (and client certificate, when the kubeconfig uses one).

Credentials (`providers.kubernetes`), resolved on every step so rotated service-account tokens are picked up:

- `in_cluster: true` — the pod's service account: `/var/run/secrets/kubernetes.io/serviceaccount/{token,
  ca.crt,namespace}` and `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`;
- `kubeconfig: <path>` — a kubeconfig file (`context`, default its `current-context`): the cluster's
  `server`, `certificate-authority` / `certificate-authority-data`, `insecure-skip-tls-verify`, and the
  user's `token` / `tokenFile` or `client-certificate(-data)` + `client-key(-data)`. Exec and auth-provider
  plugins (`aws eks get-token`, `gke-gcloud-auth-plugin`) are not run: use a service-account token;
- or `server` + `token` (+ `ca_file`) given directly.
Fields given directly override what the kubeconfig or service account says (`server` — or `base_url` —,
`token`, `ca_file`, `insecure_skip_tls_verify`, `namespace`). A step without `namespace` uses
`providers.kubernetes.namespace`, else the kubeconfig context's / service account's namespace, else `default`.

Actions (RBAC: `get`/`patch` on `deployments`, `list` on `replicasets`, `get`/`patch` on `deployments/scale`):

- `kubernetes.restart` — `kubectl rollout restart`: GET the Deployment (a paused one is refused, as kubectl
  does), then PATCH it (`application/strategic-merge-patch+json`) setting
  `spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]` to now (RFC 3339, UTC). The pod
  template changes, so the Deployment controller rolls the pods per the Deployment's strategy.
- `kubernetes.rollback` — `kubectl rollout undo [--to-revision=N]`, as `k8s.io/kubectl/pkg/polymorphichelpers/
  rollback.go` does it: GET the Deployment (paused -> refused), list the ReplicaSets matching its label selector
  and controlled by it (ownerReference `controller: true` with the Deployment's uid), read each one's
  `deployment.kubernetes.io/revision`, and take the second-highest revision (or `to_revision`). If that
  ReplicaSet's pod template already equals the Deployment's (ignoring the `pod-template-hash` label) nothing
  is sent (kubectl's "skipped rollback"). Otherwise one **JSON patch** (`application/json-patch+json`, what
  kubectl sends) replaces `/spec/template` with the ReplicaSet's template minus `pod-template-hash`, and
  `/metadata/annotations` with the ReplicaSet's annotations (so its `kubernetes.io/change-cause` comes back)
  except `last-applied-configuration`, the revision, revision-history, desired-replicas, max-replicas and
  the deprecated rollback-to annotations, which are kept from the Deployment. The controller then scales the
  old ReplicaSet back up and gives it a new, higher revision: like kubectl, a second undo flips back.
- `kubernetes.scale` — GET then PATCH the `scale` subresource (`application/merge-patch+json`,
  `{"spec": {"replicas": N}}`), as `kubectl scale` does.

The calls return when the API server has accepted the change; the rollout itself is watched by a later
`verify` step (or `kubectl rollout status`).
"""

from __future__ import annotations

import base64
import copy
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import Field, SecretStr, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from responder.actions.base import (
    ActionProvider,
    ActionResult,
    PlannedCall,
    Remediation,
    StepContext,
    VendorApi,
    VendorConfig,
)
from responder.config.base import StrictModel
from responder.errors import PermanentActionError

__all__ = [
    "KubernetesConfig",
    "KubernetesProvider",
    "KubernetesRestartParams",
    "KubernetesRollbackParams",
    "KubernetesScaleParams",
    "resolve_credentials",
]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
#: kept from the Deployment, never copied from the ReplicaSet (kubectl's annotationsToSkip)
ANNOTATIONS_TO_SKIP = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
})
SMP = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class KubernetesConfig(VendorConfig):
    token: SecretStr | None = Field(default=None, description="bearer token (a service account's); overrides "
                                                              "the kubeconfig's")
    kubeconfig: str | None = Field(default=None, description="path of a kubeconfig file")
    context: str | None = Field(default=None, description="kubeconfig context to use; default its current-context")
    in_cluster: bool = Field(default=False, description="use the pod's service account (running inside the cluster)")
    server: str | None = Field(default=None, pattern=r"^https?://",
                               description="API server URL, e.g. https://10.0.0.1:6443; overrides the kubeconfig's")
    ca_file: str | None = Field(default=None, description="PEM file of the CA that signed the API server's "
                                                          "certificate; overrides the kubeconfig's")
    namespace: str | None = Field(default=None, pattern=NAMESPACE_PATTERN,
                                  description="namespace of steps that name none; default: the kubeconfig "
                                              "context's or service account's, else default")
    insecure_skip_tls_verify: bool = Field(default=False, description="do not verify the API server's certificate "
                                                                      "(test clusters only)")

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesConfig:
        if self.in_cluster and self.kubeconfig:
            raise ValueError("set either in_cluster or kubeconfig, not both")
        return self

    def has_credentials(self) -> bool:
        return self.in_cluster or bool(self.kubeconfig) or super().has_credentials()


class KubernetesRestartParams(StrictModel):
    deployment: str = Field(pattern=NAME_PATTERN, max_length=253, description="Deployment name")
    namespace: str | None = Field(default=None, pattern=NAMESPACE_PATTERN, max_length=63,
                                  description="namespace; default: providers.kubernetes.namespace")


class KubernetesRollbackParams(StrictModel):
    deployment: str = Field(pattern=NAME_PATTERN, max_length=253, description="Deployment name")
    namespace: str | None = Field(default=None, pattern=NAMESPACE_PATTERN, max_length=63,
                                  description="namespace; default: providers.kubernetes.namespace")
    to_revision: int | None = Field(default=None, ge=1, description="revision to go back to "
                                                                    "(kubectl rollout undo --to-revision); "
                                                                    "default: the previous one")


class KubernetesScaleParams(StrictModel):
    deployment: str = Field(pattern=NAME_PATTERN, max_length=253, description="Deployment name")
    namespace: str | None = Field(default=None, pattern=NAMESPACE_PATTERN, max_length=63,
                                  description="namespace; default: providers.kubernetes.namespace")
    replicas: int = Field(ge=0, le=10_000, description="desired number of pods")


Params = KubernetesRestartParams | KubernetesRollbackParams | KubernetesScaleParams


# -- credentials -----------------------------------------------------------------------------------------
@dataclass
class Credentials:
    """Where the API server is and how to reach it; `secrets` are redacted from every message."""

    server: str
    namespace: str
    token: str | None = None
    ca_file: str | None = None
    ca_data: str | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = None
    insecure: bool = False
    secrets: list[str] = field(default_factory=list)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.server.startswith("https://"):
            return None
        context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert and self.client_key:
            # load_cert_chain reads files only: write them to a private directory for the moment it takes
            with tempfile.TemporaryDirectory(prefix="responder-k8s-") as tmp:
                cert, key = Path(tmp, "client.crt"), Path(tmp, "client.key")
                for path, data in ((cert, self.client_cert), (key, self.client_key)):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as out:
                        out.write(data)
                try:
                    context.load_cert_chain(cert, key)
                except ssl.SSLError as exc:
                    raise PermanentActionError(f"kubernetes: cannot use the client certificate: {exc.reason}") from None
        return context


def _fail(message: str) -> PermanentActionError:
    return PermanentActionError(f"kubernetes: {message} (check providers.kubernetes in responder.yaml)")


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise _fail(f"cannot read {what} {path}: {exc.strerror}") from None


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=False)
    except ValueError:
        raise _fail(f"{what} is not valid base64") from None


def _named(items: Any, name: str, kind: str, path: Path) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(kind), dict):
            return dict(item[kind])
    raise _fail(f"kubeconfig {path} has no {kind} named {name!r}")


def _user_credentials(creds: Credentials, user: dict[str, Any], name: str, file: Callable[[Any], Path]) -> None:
    """The kubeconfig user's token or client certificate, into `creds`."""
    if "exec" in user or "auth-provider" in user:
        raise _fail(f"kubeconfig user {name!r} uses an exec/auth-provider plugin, which responder "
                    "does not run; give it a service-account token (token or tokenFile)")
    if user.get("token"):
        creds.token = str(user["token"])
    elif user.get("tokenFile"):
        creds.token = _read(file(user["tokenFile"]), "tokenFile")
    if user.get("client-certificate-data"):
        creds.client_cert = _b64(user["client-certificate-data"], "client-certificate-data")
    elif user.get("client-certificate"):
        creds.client_cert = _read(file(user["client-certificate"]), "client-certificate").encode()
    if user.get("client-key-data"):
        creds.client_key = _b64(user["client-key-data"], "client-key-data")
    elif user.get("client-key"):
        creds.client_key = _read(file(user["client-key"]), "client-key").encode()
    if creds.client_key:
        creds.secrets += [creds.client_key.decode(errors="replace").strip(), str(user.get("client-key-data", ""))]


def _from_kubeconfig(config: KubernetesConfig) -> Credentials:
    assert config.kubeconfig
    path = Path(config.kubeconfig).expanduser()
    try:
        doc = YAML(typ="safe", pure=True).load(_read(path, "kubeconfig"))
    except YAMLError as exc:
        raise _fail(f"kubeconfig {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise _fail(f"kubeconfig {path} is not a kubeconfig")
    name = config.context or doc.get("current-context")
    if not name:
        raise _fail(f"kubeconfig {path} has no current-context; set providers.kubernetes.context")
    context = _named(doc.get("contexts"), str(name), "context", path)
    cluster = _named(doc.get("clusters"), str(context.get("cluster")), "cluster", path)
    user = _named(doc.get("users"), str(context.get("user")), "user", path) if context.get("user") else {}
    base = path.parent

    def file(value: Any) -> Path:
        return Path(str(value)) if Path(str(value)).is_absolute() else base / str(value)

    creds = Credentials(server=str(cluster.get("server") or ""), namespace=str(context.get("namespace") or ""),
                        insecure=bool(cluster.get("insecure-skip-tls-verify")))
    if cluster.get("certificate-authority-data"):
        creds.ca_data = _b64(cluster["certificate-authority-data"], "certificate-authority-data").decode()
    elif cluster.get("certificate-authority"):
        creds.ca_data = _read(file(cluster["certificate-authority"]), "certificate-authority")
    _user_credentials(creds, user, str(context.get("user")), file)
    return creds


def _in_cluster() -> Credentials:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise _fail("in_cluster is set but KUBERNETES_SERVICE_HOST/PORT are not (not running in a pod?)")
    if ":" in host:
        host = f"[{host}]"
    ca = SERVICE_ACCOUNT_DIR / "ca.crt"
    namespace = SERVICE_ACCOUNT_DIR / "namespace"
    return Credentials(server=f"https://{host}:{port}", token=_read(SERVICE_ACCOUNT_DIR / "token", "token"),
                       ca_file=str(ca) if ca.exists() else None,
                       namespace=namespace.read_text().strip() if namespace.exists() else "")


def resolve_credentials(config: KubernetesConfig) -> Credentials:
    """The API server, auth and TLS settings from the service account / kubeconfig / config fields."""
    if config.in_cluster:
        creds = _in_cluster()
    elif config.kubeconfig:
        creds = _from_kubeconfig(config)
    else:
        creds = Credentials(server="", namespace="")
    creds.server = (config.server or config.base_url or creds.server).rstrip("/")
    if config.token is not None:
        creds.token = config.token.get_secret_value()
    if config.ca_file:
        creds.ca_file, creds.ca_data = config.ca_file, None
    creds.insecure = creds.insecure or config.insecure_skip_tls_verify
    creds.namespace = config.namespace or creds.namespace or "default"
    if not creds.server:
        raise _fail("no API server: set server (or kubeconfig, or in_cluster)")
    if not creds.token and not (creds.client_cert and creds.client_key):
        raise _fail("no credentials: set token, or a kubeconfig user with a token or a client certificate")
    creds.secrets = [s for s in [*creds.secrets, creds.token or "", *config.secrets()] if s]
    return creds


# -- Kubernetes objects ----------------------------------------------------------------------------------
def label_selector(selector: dict[str, Any]) -> str:
    """A LabelSelector (matchLabels, matchExpressions) as the `labelSelector` query string."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), ",".join(sorted(expr.get("values") or []))
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": f"{key}",
                      "DoesNotExist": f"!{key}"}.get(str(op), f"{key}"))
    return ",".join(parts)


def _revision(obj: dict[str, Any]) -> int | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(template)
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return out


def _images(template: dict[str, Any]) -> list[str]:
    containers = (template.get("spec") or {}).get("containers") or []
    return [str(c.get("image")) for c in containers if isinstance(c, dict) and c.get("image")]


def _owned_by(rs: dict[str, Any], uid: str) -> bool:
    refs = (rs.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(r, dict) and r.get("controller") and r.get("uid") == uid for r in refs)


class KubernetesProvider(ActionProvider):
    name = "kubernetes"
    Config = KubernetesConfig
    actions = {"restart": KubernetesRestartParams, "rollback": KubernetesRollbackParams,
               "scale": KubernetesScaleParams}

    def _cfg(self) -> KubernetesConfig:
        assert isinstance(self.config, KubernetesConfig)
        return self.config

    def secrets(self) -> list[str]:
        try:
            return resolve_credentials(self._cfg()).secrets
        except PermanentActionError:
            return self._cfg().secrets()

    def _api(self, creds: Credentials) -> VendorApi:
        headers = {"Accept": "application/json"}
        if creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        return VendorApi("kubernetes", self.deps.http, creds.server, headers=headers, secrets=creds.secrets,
                         timeout=self._cfg().timeout, ssl_context=creds.ssl_context())

    def _namespace(self, params: Params, creds: Credentials | None = None) -> str:
        if params.namespace:
            return params.namespace
        if creds is not None:
            return creds.namespace
        try:
            return resolve_credentials(self._cfg()).namespace
        except PermanentActionError:
            return self._cfg().namespace or "default"

    @staticmethod
    def _path(namespace: str, deployment: str, sub: str = "") -> str:
        path = f"/apis/apps/v1/namespaces/{quote(namespace)}/deployments/{quote(deployment)}"
        return f"{path}/{sub}" if sub else path

    # -- plan / remediation ----------------------------------------------------------------------
    def remediation(self, verb: str, params: StrictModel) -> Remediation | None:
        assert isinstance(params, Params)
        return Remediation(kind=verb, target=f"kubernetes:{self._namespace(params)}/{params.deployment}")

    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        assert isinstance(params, Params)
        try:
            creds = resolve_credentials(self._cfg())
        except PermanentActionError:
            creds = Credentials(server="https://<kubernetes API server>", namespace=self._namespace(params),
                                token="<token>")
        headers = {"Accept": "application/json", "Authorization": "Bearer <token>"} if creds.token else \
            {"Accept": "application/json"}
        api = VendorApi("kubernetes", self.deps.http, creds.server, headers=headers, secrets=[])
        ns = self._namespace(params, creds)
        path = self._path(ns, params.deployment)
        if isinstance(params, KubernetesRestartParams):
            return [api.planned("GET", path, note="a paused Deployment is refused"),
                    api.planned("PATCH", path, self._restart_patch("<now, RFC 3339>"),
                                headers={"Content-Type": SMP})]
        if isinstance(params, KubernetesRollbackParams):
            which = f"revision {params.to_revision}" if params.to_revision else "the previous revision"
            return [
                api.planned("GET", path, note="its label selector, uid and template; a paused Deployment is refused"),
                api.planned("GET", f"/apis/apps/v1/namespaces/{quote(ns)}/replicasets?labelSelector="
                                   "<the Deployment's selector>",
                            note=f"the ReplicaSets it controls, by deployment.kubernetes.io/revision: {which}"),
                api.planned("PATCH", path, [
                    {"op": "replace", "path": "/spec/template",
                     "value": f"<pod template of {which}, without the pod-template-hash label>"},
                    {"op": "replace", "path": "/metadata/annotations",
                     "value": f"<annotations of {which}, keeping the Deployment's revision annotations>"},
                ], headers={"Content-Type": JSON_PATCH},
                    note="not sent when the template already matches that revision"),
            ]
        assert isinstance(params, KubernetesScaleParams)
        return [api.planned("GET", self._path(ns, params.deployment, "scale")),
                api.planned("PATCH", self._path(ns, params.deployment, "scale"),
                            {"spec": {"replicas": params.replicas}}, headers={"Content-Type": MERGE_PATCH})]

    # -- run -------------------------------------------------------------------------------------
    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        assert isinstance(params, Params)
        creds = resolve_credentials(self._cfg())
        api = self._api(creds)
        ns = self._namespace(params, creds)
        if isinstance(params, KubernetesRestartParams):
            return await self._restart(api, ns, params)
        if isinstance(params, KubernetesRollbackParams):
            return await self._rollback(api, ns, params)
        return await self._scale(api, ns, params)

    @staticmethod
    def _restart_patch(now: str) -> dict[str, Any]:
        return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}

    async def _deployment(self, api: VendorApi, ns: str, name: str, what: str) -> dict[str, Any]:
        deployment = (await api.request("GET", self._path(ns, name))).json()
        if not isinstance(deployment, dict) or not isinstance(deployment.get("spec"), dict):
            raise PermanentActionError(f"kubernetes: unexpected answer for deployment {ns}/{name}")
        if deployment["spec"].get("paused"):
            raise PermanentActionError(f"kubernetes: deployment {ns}/{name} is paused; cannot {what} it (resume it "
                                       f"first: kubectl rollout resume deployment/{name} -n {ns})")
        return deployment

    async def _restart(self, api: VendorApi, ns: str, params: KubernetesRestartParams) -> ActionResult:
        await self._deployment(api, ns, params.deployment, "restart")
        now = self.deps.clock.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patched = (await api.request("PATCH", self._path(ns, params.deployment), json_body=self._restart_patch(now),
                                     content_type=SMP)).json() or {}
        generation = (patched.get("metadata") or {}).get("generation")
        return ActionResult(f"restarted deployment {params.deployment} ({ns}): pods roll with restartedAt {now}",
                            {"namespace": ns, "deployment": params.deployment, "restarted_at": now,
                             "generation": generation})

    async def _replicasets(self, api: VendorApi, ns: str, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        selector = label_selector(deployment["spec"].get("selector") or {})
        listing = (await api.request("GET", f"/apis/apps/v1/namespaces/{quote(ns)}/replicasets",
                                     params={"labelSelector": selector})).json()
        items = listing.get("items") if isinstance(listing, dict) else None
        uid = (deployment.get("metadata") or {}).get("uid")
        return [rs for rs in items or [] if isinstance(rs, dict) and _owned_by(rs, str(uid))]

    async def _rollback(self, api: VendorApi, ns: str, params: KubernetesRollbackParams) -> ActionResult:
        name = params.deployment
        deployment = await self._deployment(api, ns, name, "roll back")
        revisions = sorted(((rev, rs) for rs in await self._replicasets(api, ns, deployment)
                            if (rev := _revision(rs)) is not None), key=lambda pair: pair[0], reverse=True)
        if not revisions:
            raise PermanentActionError(f"kubernetes: no rollout history found for deployment {ns}/{name}")
        current_rev = revisions[0][0]
        if params.to_revision is not None:
            found = [pair for pair in revisions if pair[0] == params.to_revision]
            if not found:
                known = ", ".join(str(rev) for rev, _ in sorted(revisions))
                raise PermanentActionError(f"kubernetes: revision {params.to_revision} of deployment {ns}/{name} "
                                           f"not found (known: {known})")
            target_rev, target = found[0]
        elif len(revisions) < 2:
            raise PermanentActionError(f"kubernetes: no previous revision of deployment {ns}/{name} to roll back to "
                                       f"(only revision {current_rev})")
        else:
            target_rev, target = revisions[1]
        template = (target.get("spec") or {}).get("template") or {}
        current_template = deployment["spec"].get("template") or {}
        output: dict[str, Any] = {"namespace": ns, "deployment": name, "to_revision": target_rev,
                                  "from_revision": _revision(deployment) or current_rev,
                                  "images": _images(template), "previous_images": _images(current_template)}
        if _without_hash(template) == _without_hash(current_template):
            return ActionResult(f"skipped rollback of deployment {name} ({ns}): the current template already "
                                f"matches revision {target_rev}", {**output, "rolled_back": False})
        kept = (deployment.get("metadata") or {}).get("annotations") or {}
        annotations = {k: v for k, v in kept.items() if k in ANNOTATIONS_TO_SKIP}
        annotations.update({k: v for k, v in ((target.get("metadata") or {}).get("annotations") or {}).items()
                            if k not in ANNOTATIONS_TO_SKIP})
        patch = [{"op": "replace", "path": "/spec/template", "value": _without_hash(template)},
                 {"op": "replace", "path": "/metadata/annotations", "value": annotations}]
        await api.request("PATCH", self._path(ns, name), json_body=patch, content_type=JSON_PATCH)
        images = ", ".join(output["images"]) or "?"
        was = ", ".join(output["previous_images"]) or "?"
        return ActionResult(f"rolled back deployment {name} ({ns}) to revision {target_rev} ({images}), was revision "
                            f"{output['from_revision']} ({was})", {**output, "rolled_back": True})

    async def _scale(self, api: VendorApi, ns: str, params: KubernetesScaleParams) -> ActionResult:
        path = self._path(ns, params.deployment, "scale")
        before = (await api.request("GET", path)).json() or {}
        was = (before.get("spec") or {}).get("replicas")
        await api.request("PATCH", path, json_body={"spec": {"replicas": params.replicas}}, content_type=MERGE_PATCH)
        return ActionResult(f"scaled deployment {params.deployment} ({ns}) to {params.replicas} replicas (was {was})",
                            {"namespace": ns, "deployment": params.deployment, "replicas": params.replicas,
                             "previous_replicas": was})
