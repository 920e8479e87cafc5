"""KubernetesFake: an API server with apps/v1 Deployments and ReplicaSets, and a tiny Deployment controller.

Endpoints (real shapes: apiVersion/kind/metadata/spec/status; errors are `Status` objects):

- `GET   /apis/apps/v1/namespaces/{ns}/deployments/{name}`
- `PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}` with `Content-Type`
  `application/strategic-merge-patch+json` or `application/merge-patch+json` (applied as an RFC 7386 merge:
  enough for maps such as annotations; real strategic merge also merges lists by key) or
  `application/json-patch+json` (RFC 6902 add/replace/remove/test). Anything else: 415.
- `GET|PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale` (autoscaling/v1 `Scale`).
- `GET   /apis/apps/v1/namespaces/{ns}/replicasets?labelSelector=...` (`ReplicaSetList`; equality and set-based
  selectors).

Auth: `Authorization: Bearer <token>`, or (with `client_ca=True` on a TLS fake) a client certificate signed
by the fake's CA; otherwise 401 `Status` "Unauthorized".

The controller: a change of `spec.template` makes the Deployment's new revision (max + 1). The ReplicaSet
whose template equals the new one (ignoring `pod-template-hash`) is reused and renumbered (its old number goes
to `deployment.kubernetes.io/revision-history`), else a new ReplicaSet `<name>-<hash>` is created; it gets the
Deployment's annotations (so `kubernetes.io/change-cause` travels) and all the replicas, the others 0.
`generation` counts spec changes; `resourceVersion` every write.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import ssl
from typing import Any

from aiohttp import web

from tests.fakes.vendor import FakeVendor

__all__ = ["KubernetesFake", "merge_patch"]

REVISION = "deployment.kubernetes.io/revision"
HISTORY = "deployment.kubernetes.io/revision-history"
HASH = "pod-template-hash"
CONTROLLER_SKIP = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, HISTORY,
                   "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas"}


def status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, status=code)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class PatchError(Exception):
    pass


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 (objects only: what Deployment patches need)."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch is a list of operations")
    out = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove", "test") or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        *parents, last = _pointer(op["path"])
        node: Any = out
        for part in parents:
            if not isinstance(node, dict) or part not in node:
                raise PatchError(f"doc is missing path: {op['path']}")
            node = node[part]
        if not isinstance(node, dict):
            raise PatchError(f"not an object: {op['path']}")
        if op["op"] in ("replace", "remove", "test") and last not in node:
            raise PatchError(f"{op['op']} operation does not apply: doc is missing key: {op['path']}")
        if op["op"] == "test":
            if node[last] != op.get("value"):
                raise PatchError(f"testing value {op['path']} failed")
        elif op["op"] == "remove":
            del node[last]
        else:
            if "value" not in op:
                raise PatchError(f"{op['op']} needs a value")
            node[last] = copy.deepcopy(op["value"])
    return out


def _parse_selector(text: str) -> list[tuple[str, str, set[str]]]:
    """labelSelector -> [(key, op, values)] with op in =, !=, in, notin, exists, !exists."""
    out: list[tuple[str, str, set[str]]] = []
    for part in re.split(r",(?![^()]*\))", text.strip()) if text.strip() else []:
        part = part.strip()
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", part):
            out.append((m[1], m[2], {v.strip() for v in m[3].split(",") if v.strip()}))
        elif m := re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)", part):
            out.append((m[1], "!=" if m[2] == "!=" else "=", {m[3]}))
        elif m := re.fullmatch(r"(!?)([\w./-]+)", part):
            out.append((m[2], "!exists" if m[1] else "exists", set()))
        else:
            raise ValueError(part)
    return out


def _matches(labels: dict[str, str], selector: list[tuple[str, str, set[str]]]) -> bool:
    for key, op, values in selector:
        value = labels.get(key)
        ok = {"=": value in values, "!=": value not in values, "in": value in values,
              "notin": value not in values, "exists": key in labels, "!exists": key not in labels}[op]
        if not ok:
            return False
    return True


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(template)
    out.get("metadata", {}).get("labels", {}).pop(HASH, None)
    return out


def _template_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_without_hash(template), sort_keys=True).encode()).hexdigest()[:10]


class KubernetesFake(FakeVendor):
    name = "kubernetes"

    def __init__(self, *, token: str | None = None, tls: bool = False, client_ca: bool = False) -> None:
        super().__init__(token=token, tls=tls)
        self.client_ca = client_ca
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.replicasets: dict[tuple[str, str], dict[str, Any]] = {}
        self._version = 1000
        self._uid = 0

    # -- state -------------------------------------------------------------------------------------
    def _rv(self) -> str:
        self._version += 1
        return str(self._version)

    def _new_uid(self) -> str:
        self._uid += 1
        return f"7c1e5c2a-0000-4000-8000-{self._uid:012d}"

    def add_deployment(self, namespace: str, name: str, images: list[str], *, replicas: int = 3,
                       change_causes: list[str] | None = None, paused: bool = False) -> dict[str, Any]:
        """A Deployment rolled out once per image in `images` (revision 1..n; the last is current)."""
        labels = {"app": name}
        deployment: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "uid": self._new_uid(), "resourceVersion": self._rv(),
                         "generation": 0, "creationTimestamp": "2024-11-01T10:00:00Z", "labels": dict(labels),
                         "annotations": {}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)}, "revisionHistoryLimit": 10,
                     "progressDeadlineSeconds": 600, "paused": paused,
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                     "template": {}},
            "status": {},
        }
        self.deployments[(namespace, name)] = deployment
        for i, image in enumerate(images):
            cause = (change_causes or [])[i] if change_causes and i < len(change_causes) else None
            if cause:
                deployment["metadata"]["annotations"]["kubernetes.io/change-cause"] = cause
            else:
                deployment["metadata"]["annotations"].pop("kubernetes.io/change-cause", None)
            deployment["spec"]["template"] = {
                "metadata": {"labels": dict(labels), "annotations": {"prometheus.io/scrape": "true"}},
                "spec": {"containers": [{"name": "api", "image": image, "ports": [{"containerPort": 8080,
                                                                                 "protocol": "TCP"}],
                                         "resources": {}, "imagePullPolicy": "IfNotPresent"}],
                         "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst"}}
            self._reconcile(deployment)
        return deployment

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self.deployments[(namespace, name)]

    def owned_replicasets(self, namespace: str, name: str) -> list[dict[str, Any]]:
        uid = self.deployment(namespace, name)["metadata"]["uid"]
        return [rs for (ns, _), rs in self.replicasets.items()
                if ns == namespace and any(r["uid"] == uid for r in rs["metadata"]["ownerReferences"])]

    def _reconcile(self, deployment: dict[str, Any]) -> None:
        """The Deployment controller, synchronously: find or create the ReplicaSet of the current template."""
        meta, spec = deployment["metadata"], deployment["spec"]
        meta["generation"] += 1
        meta["resourceVersion"] = self._rv()
        namespace, name = meta["namespace"], meta["name"]
        owned = self.owned_replicasets(namespace, name)
        revisions = [int(rs["metadata"]["annotations"][REVISION]) for rs in owned]
        current = next((rs for rs in owned
                        if _without_hash(rs["spec"]["template"]) == _without_hash(spec["template"])), None)
        top = max(revisions, default=0)
        annotations = {k: v for k, v in meta["annotations"].items() if k not in CONTROLLER_SKIP}
        if current is None:
            digest = _template_hash(spec["template"])
            template = copy.deepcopy(spec["template"])
            template["metadata"].setdefault("labels", {})[HASH] = digest
            current = {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{name}-{digest}", "namespace": namespace, "uid": self._new_uid(),
                             "labels": {**spec["selector"]["matchLabels"], HASH: digest},
                             "annotations": {**annotations, REVISION: str(top + 1)},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                  "uid": meta["uid"], "controller": True,
                                                  "blockOwnerDeletion": True}],
                             "creationTimestamp": "2024-11-01T10:00:00Z", "generation": 1},
                "spec": {"replicas": 0, "selector": {"matchLabels": {**spec["selector"]["matchLabels"],
                                                                     HASH: digest}},
                         "template": template},
                "status": {},
            }
            self.replicasets[(namespace, current["metadata"]["name"])] = current
        elif int(current["metadata"]["annotations"][REVISION]) != top:
            old = current["metadata"]["annotations"][REVISION]
            history = [h for h in current["metadata"]["annotations"].get(HISTORY, "").split(",") if h]
            current["metadata"]["annotations"] = {**annotations, REVISION: str(top + 1),
                                                  HISTORY: ",".join([*history, old])}
        for rs in self.owned_replicasets(namespace, name):
            replicas = spec["replicas"] if rs is current else 0
            rs["spec"]["replicas"] = replicas
            rs["status"] = {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                            "fullyLabeledReplicas": replicas, "observedGeneration": rs["metadata"]["generation"]}
            rs["metadata"]["resourceVersion"] = self._rv()
        meta["annotations"][REVISION] = current["metadata"]["annotations"][REVISION]
        self._status(deployment)

    @staticmethod
    def _status(deployment: dict[str, Any]) -> None:
        replicas = deployment["spec"]["replicas"]
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"], "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                           {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}

    # -- HTTP ----------------------------------------------------------------------------------------
    def authorized(self, request: web.Request) -> bool:
        if self.client_ca and request.transport is not None and request.transport.get_extra_info("peercert"):
            return True
        return self.token is not None and request.headers.get("Authorization") == f"Bearer {self.token}"

    def unauthorized(self) -> web.Response:
        return status(401, "Unauthorized", "Unauthorized")

    async def start(self) -> KubernetesFake:
        if not (self.tls and self.client_ca):
            await super().start()
            return self
        import trustme

        self.ca = trustme.CA()
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
        self.ca.configure_trust(server_ctx)
        server_ctx.verify_mode = ssl.CERT_OPTIONAL  # a client certificate, or a bearer token
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    def routes(self, router: web.UrlDispatcher) -> None:
        base = "/apis/apps/v1/namespaces/{ns}"
        router.add_get(base + "/deployments/{name}", self.get_deployment)
        router.add_patch(base + "/deployments/{name}", self.patch_deployment)
        router.add_get(base + "/deployments/{name}/scale", self.get_scale)
        router.add_patch(base + "/deployments/{name}/scale", self.patch_scale)
        router.add_get(base + "/replicasets", self.list_replicasets)

    def _find(self, request: web.Request) -> dict[str, Any] | web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.deployments:
            return status(404, "NotFound", f'deployments.apps "{key[1]}" not found')
        return self.deployments[key]

    async def _patch_body(self, request: web.Request, current: dict[str, Any]) -> dict[str, Any] | web.Response:
        kind = request.content_type
        try:
            body = json.loads(await request.text())
        except ValueError:
            return status(400, "BadRequest", "the body of the request was in an unknown format")
        if kind in ("application/strategic-merge-patch+json", "application/merge-patch+json"):
            if not isinstance(body, dict):
                return status(400, "BadRequest", "a merge patch is a JSON object")
            return dict(merge_patch(current, body))
        if kind == "application/json-patch+json":
            try:
                return json_patch(current, body)
            except PatchError as exc:
                return status(422, "Invalid", str(exc))
        return status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                                                    f"accepted media types include: application/json-patch+json, "
                                                    f"application/merge-patch+json, "
                                                    f"application/strategic-merge-patch+json (got {kind!r})")

    async def get_deployment(self, request: web.Request) -> web.Response:
        found = self._find(request)
        return found if isinstance(found, web.Response) else web.json_response(found)

    async def patch_deployment(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        patched = await self._patch_body(request, found)
        if isinstance(patched, web.Response):
            return patched
        for field in ("name", "namespace", "uid"):
            if patched.get("metadata", {}).get(field) != found["metadata"][field]:
                return status(422, "Invalid", f"metadata.{field}: field is immutable")
        if patched["spec"].get("selector") != found["spec"]["selector"]:
            return status(422, "Invalid", "spec.selector: field is immutable")
        labels = (patched["spec"].get("template", {}).get("metadata") or {}).get("labels") or {}
        if not _matches(labels, _parse_selector(",".join(f"{k}={v}" for k, v in
                                                         found["spec"]["selector"]["matchLabels"].items()))):
            return status(422, "Invalid", "spec.template.metadata.labels: `selector` does not match template "
                                          "`labels`")
        containers = (patched["spec"].get("template", {}).get("spec") or {}).get("containers")
        if not isinstance(containers, list) or not containers or not all(
                isinstance(c, dict) and c.get("name") and c.get("image") for c in containers):
            return status(422, "Invalid", "spec.template.spec.containers: Required value")
        template_changed = patched["spec"]["template"] != found["spec"]["template"]
        spec_changed = patched["spec"] != found["spec"]
        found.clear()
        found.update(patched)
        if template_changed:
            self._reconcile(found)
        else:
            if spec_changed:
                found["metadata"]["generation"] += 1
            found["metadata"]["resourceVersion"] = self._rv()
            self._status(found)
        return web.json_response(found)

    def _scale(self, deployment: dict[str, Any]) -> dict[str, Any]:
        meta = deployment["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                             "resourceVersion": meta["resourceVersion"],
                             "creationTimestamp": meta["creationTimestamp"]},
                "spec": {"replicas": deployment["spec"]["replicas"]},
                "status": {"replicas": deployment["status"].get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in
                                                deployment["spec"]["selector"]["matchLabels"].items())}}

    async def get_scale(self, request: web.Request) -> web.Response:
        found = self._find(request)
        return found if isinstance(found, web.Response) else web.json_response(self._scale(found))

    async def patch_scale(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        patched = await self._patch_body(request, self._scale(found))
        if isinstance(patched, web.Response):
            return patched
        replicas = (patched.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            return status(422, "Invalid", f"spec.replicas: Invalid value: {replicas!r}: must be greater than or "
                                          "equal to 0")
        previous = found["status"].get("replicas", 0)
        if replicas != found["spec"]["replicas"]:
            found["spec"]["replicas"] = replicas
            found["metadata"]["generation"] += 1
            found["metadata"]["resourceVersion"] = self._rv()
            for rs in self.owned_replicasets(found["metadata"]["namespace"], found["metadata"]["name"]):
                if rs["metadata"]["annotations"][REVISION] == found["metadata"]["annotations"][REVISION]:
                    rs["spec"]["replicas"] = replicas
        scale = self._scale(found)
        scale["status"]["replicas"] = previous  # the pods have not moved yet
        self._status(found)
        return web.json_response(scale)

    async def list_replicasets(self, request: web.Request) -> web.Response:
        namespace = request.match_info["ns"]
        try:
            selector = _parse_selector(request.query.get("labelSelector", ""))
        except ValueError as exc:
            return status(400, "BadRequest", f"unable to parse requirement: {exc}")
        items = [{k: v for k, v in rs.items() if k not in ("apiVersion", "kind")}
                 for (ns, _), rs in sorted(self.replicasets.items())
                 if ns == namespace and _matches(rs["metadata"].get("labels") or {}, selector)]
        return web.json_response({"kind": "ReplicaSetList", "apiVersion": "apps/v1",
                                  "metadata": {"resourceVersion": str(self._version)}, "items": items})
