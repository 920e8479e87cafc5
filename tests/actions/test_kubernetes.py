"""kubernetes.restart / rollback / scale against KubernetesFake; credentials from config, kubeconfig, in-cluster."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from responder.actions import kubernetes as k8s
from responder.actions.base import ActionResult, ProviderDeps, Remediation, StepContext
from responder.actions.kubernetes import (
    KubernetesConfig,
    KubernetesProvider,
    KubernetesRestartParams,
    KubernetesRollbackParams,
    KubernetesScaleParams,
    label_selector,
    resolve_credentials,
)
from responder.errors import PermanentActionError
from tests.actions.conformance import CHECKS, Case, conformance
from tests.fakes.kubernetes import KubernetesFake
from tests.fakes.vendor import FakeVendor

TOKEN = "eyJhbGciOiJSUzI1NiJ9.k8s-sa-token-secret"
IMG = "registry.example.com/api"
DEPLOY = "/apis/apps/v1/namespaces/production/deployments/api"


def seed(fake: KubernetesFake) -> None:
    fake.add_deployment("production", "api", [f"{IMG}:1.0", f"{IMG}:1.1", f"{IMG}:1.2"],
                        change_causes=["release 1.0", "release 1.1", "release 1.2"])


@pytest.fixture
async def fake() -> AsyncIterator[KubernetesFake]:
    async with KubernetesFake(token=TOKEN) as server:
        assert isinstance(server, KubernetesFake)
        seed(server)
        yield server


def make_provider(deps: ProviderDeps, **config: Any) -> KubernetesProvider:
    return KubernetesProvider(KubernetesConfig.model_validate({"timeout": "1s", **config}), deps)


@pytest.fixture
def provider(fake: KubernetesFake, deps: ProviderDeps) -> KubernetesProvider:
    return make_provider(deps, server=fake.url, token=TOKEN)


def image(fake: KubernetesFake, ns: str = "production", name: str = "api") -> str:
    return str(fake.deployment(ns, name)["spec"]["template"]["spec"]["containers"][0]["image"])


def revision(fake: KubernetesFake, ns: str = "production", name: str = "api") -> str:
    return str(fake.deployment(ns, name)["metadata"]["annotations"]["deployment.kubernetes.io/revision"])


# -- conformance ---------------------------------------------------------------------------------------
def _expect(verb: str) -> Any:
    def check(result: ActionResult, fake: FakeVendor) -> None:
        assert isinstance(fake, KubernetesFake)
        assert fake.calls("PATCH"), "nothing was patched"
        if verb == "rollback":
            assert result.output["rolled_back"] is True
        if verb == "scale":
            assert fake.deployment("production", "api")["spec"]["replicas"] == 5
    return check


@pytest.fixture(params=["restart", "rollback", "scale"])
def case(request: pytest.FixtureRequest, fake: KubernetesFake, deps: ProviderDeps, ctx: StepContext) -> Case:
    provider = make_provider(deps, server=fake.url, token=TOKEN, timeout="300ms")  # the stall is 0.6 s
    params = {"restart": KubernetesRestartParams(deployment="api", namespace="production"),
              "rollback": KubernetesRollbackParams(deployment="api", namespace="production"),
              "scale": KubernetesScaleParams(deployment="api", namespace="production", replicas=5)}[request.param]
    return Case(fake, provider, request.param, params, ctx, expect_ok=_expect(request.param), stall=0.6)


@pytest.mark.parametrize("check", CHECKS)
async def test_conformance(check: str, case: Case, caplog: pytest.LogCaptureFixture) -> None:
    await conformance(check, case, caplog)


# -- kubernetes.restart --------------------------------------------------------------------------------
async def test_restart_patches_the_restarted_at_annotation(fake: KubernetesFake, provider: KubernetesProvider,
                                                           ctx: StepContext) -> None:
    result = await provider.run("restart", KubernetesRestartParams(deployment="api", namespace="production"), ctx)
    patch = fake.calls("PATCH", DEPLOY)[0]
    assert patch.headers["Content-Type"] == "application/strategic-merge-patch+json"
    assert patch.headers["Authorization"] == f"Bearer {TOKEN}"
    assert patch.json == {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}}
    template = fake.deployment("production", "api")["spec"]["template"]
    assert template["metadata"]["annotations"] == {"prometheus.io/scrape": "true",
                                                   "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}
    assert revision(fake) == "4", "the template changed: the controller rolled a new ReplicaSet"
    assert image(fake) == f"{IMG}:1.2"
    assert result.summary == "restarted deployment api (production): pods roll with restartedAt 2026-01-01T00:00:00Z"
    assert result.output == {"namespace": "production", "deployment": "api",
                             "restarted_at": "2026-01-01T00:00:00Z", "generation": 4}


async def test_restart_refuses_a_paused_deployment(fake: KubernetesFake, provider: KubernetesProvider,
                                                   ctx: StepContext) -> None:
    fake.add_deployment("production", "batch", [f"{IMG}:1.0"], paused=True)
    with pytest.raises(PermanentActionError, match=r"production/batch is paused.*kubectl rollout resume"):
        await provider.run("restart", KubernetesRestartParams(deployment="batch", namespace="production"), ctx)
    assert not fake.calls("PATCH")


async def test_missing_deployment_is_permanent(provider: KubernetesProvider, ctx: StepContext) -> None:
    with pytest.raises(PermanentActionError, match=r'HTTP 404.*deployments.apps \\"nope\\" not found'):
        await provider.run("restart", KubernetesRestartParams(deployment="nope", namespace="production"), ctx)


# -- kubernetes.rollback -------------------------------------------------------------------------------
async def test_rollback_to_the_previous_revision_as_kubectl_does(fake: KubernetesFake, provider: KubernetesProvider,
                                                                 ctx: StepContext) -> None:
    annotations = fake.deployment("production", "api")["metadata"]["annotations"]
    annotations["kubectl.kubernetes.io/last-applied-configuration"] = '{"kind":"Deployment"}'
    annotations["team"] = "payments"  # a Deployment-only annotation: kubectl's patch drops it
    result = await provider.run("rollback", KubernetesRollbackParams(deployment="api", namespace="production"), ctx)

    listing = fake.calls("GET", "/apis/apps/v1/namespaces/production/replicasets")[0]
    assert listing.query == {"labelSelector": "app=api"}
    patch = fake.calls("PATCH", DEPLOY)[0]
    assert patch.headers["Content-Type"] == "application/json-patch+json"
    ops = patch.json
    assert [(op["op"], op["path"]) for op in ops] == [("replace", "/spec/template"),
                                                      ("replace", "/metadata/annotations")]
    assert "pod-template-hash" not in ops[0]["value"]["metadata"]["labels"]
    assert ops[0]["value"]["spec"]["containers"][0]["image"] == f"{IMG}:1.1"
    assert ops[1]["value"] == {"kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Deployment"}',
                               "deployment.kubernetes.io/revision": "3",
                               "kubernetes.io/change-cause": "release 1.1"}

    assert image(fake) == f"{IMG}:1.1"
    assert revision(fake) == "4", "the old ReplicaSet comes back with a new revision"
    old_rs = next(rs for rs in fake.owned_replicasets("production", "api")
                  if rs["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMG}:1.1")
    assert old_rs["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "2"
    assert old_rs["spec"]["replicas"] == 3
    assert fake.deployment("production", "api")["metadata"]["annotations"]["kubernetes.io/change-cause"] == \
        "release 1.1"
    assert result.output == {"namespace": "production", "deployment": "api", "to_revision": 2, "from_revision": 3,
                             "images": [f"{IMG}:1.1"], "previous_images": [f"{IMG}:1.2"], "rolled_back": True}
    assert result.summary == (f"rolled back deployment api (production) to revision 2 ({IMG}:1.1), "
                              f"was revision 3 ({IMG}:1.2)")

    # like `kubectl rollout undo`, a second undo flips back to the template before
    again = await provider.run("rollback", KubernetesRollbackParams(deployment="api", namespace="production"), ctx)
    assert again.output["to_revision"] == 3 and image(fake) == f"{IMG}:1.2"


async def test_rollback_to_a_given_revision(fake: KubernetesFake, provider: KubernetesProvider,
                                            ctx: StepContext) -> None:
    result = await provider.run("rollback", KubernetesRollbackParams(deployment="api", namespace="production",
                                                                     to_revision=1), ctx)
    assert result.output["to_revision"] == 1 and image(fake) == f"{IMG}:1.0"
    with pytest.raises(PermanentActionError, match=r"revision 9 of deployment production/api not found "
                                                   r"\(known: 2, 3, 4\)"):
        await provider.run("rollback", KubernetesRollbackParams(deployment="api", namespace="production",
                                                                to_revision=9), ctx)


async def test_rollback_is_skipped_when_the_template_already_matches(fake: KubernetesFake,
                                                                    provider: KubernetesProvider,
                                                                    ctx: StepContext) -> None:
    result = await provider.run("rollback", KubernetesRollbackParams(deployment="api", namespace="production",
                                                                     to_revision=3), ctx)
    assert result.output["rolled_back"] is False
    assert result.summary == ("skipped rollback of deployment api (production): the current template already "
                              "matches revision 3")
    assert not fake.calls("PATCH")


async def test_rollback_ignores_replicasets_it_does_not_control(fake: KubernetesFake, provider: KubernetesProvider,
                                                                ctx: StepContext) -> None:
    stray = fake.owned_replicasets("production", "api")[0]
    fake.replicasets[("production", "api-stray")] = {
        **stray, "metadata": {**stray["metadata"], "name": "api-stray", "uid": "other",
                              "annotations": {"deployment.kubernetes.io/revision": "99"},
                              "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api",
                                                   "uid": "an-older-api-deployment", "controller": True}]}}
    result = await provider.run("rollback", KubernetesRollbackParams(deployment="api", namespace="production"), ctx)
    assert result.output["to_revision"] == 2 and result.output["from_revision"] == 3


async def test_rollback_without_history_is_permanent(fake: KubernetesFake, provider: KubernetesProvider,
                                                     ctx: StepContext) -> None:
    fake.add_deployment("production", "fresh", [f"{IMG}:1.0"])
    with pytest.raises(PermanentActionError, match="no previous revision of deployment production/fresh"):
        await provider.run("rollback", KubernetesRollbackParams(deployment="fresh", namespace="production"), ctx)
    fake.add_deployment("production", "paused", [f"{IMG}:1.0", f"{IMG}:1.1"], paused=True)
    with pytest.raises(PermanentActionError, match="paused; cannot roll back"):
        await provider.run("rollback", KubernetesRollbackParams(deployment="paused", namespace="production"), ctx)
    assert not fake.calls("PATCH")


def test_label_selector() -> None:
    assert label_selector({"matchLabels": {"tier": "web", "app": "api"}, "matchExpressions": [
        {"key": "track", "operator": "In", "values": ["stable", "canary"]},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "owner", "operator": "Exists"}, {"key": "legacy", "operator": "DoesNotExist"}]}) == \
        "app=api,tier=web,track in (canary,stable),env notin (dev),owner,!legacy"
    assert label_selector({}) == ""


# -- kubernetes.scale ----------------------------------------------------------------------------------
async def test_scale_patches_the_scale_subresource(fake: KubernetesFake, provider: KubernetesProvider,
                                                   ctx: StepContext) -> None:
    result = await provider.run("scale", KubernetesScaleParams(deployment="api", namespace="production", replicas=6),
                                ctx)
    patch = fake.calls("PATCH", f"{DEPLOY}/scale")[0]
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.json == {"spec": {"replicas": 6}}
    assert fake.deployment("production", "api")["spec"]["replicas"] == 6
    assert revision(fake) == "3", "scaling does not roll a new ReplicaSet"
    assert result.summary == "scaled deployment api (production) to 6 replicas (was 3)"
    assert result.output == {"namespace": "production", "deployment": "api", "replicas": 6, "previous_replicas": 3}


# -- credentials ---------------------------------------------------------------------------------------
def _kubeconfig(path: Path, server: str, *, user: dict[str, Any], cluster: dict[str, Any] | None = None,
                namespace: str = "staging") -> Path:
    from ruamel.yaml import YAML

    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "ops@prod", "preferences": {},
           "clusters": [{"name": "other", "cluster": {"server": "https://192.0.2.1:6443"}},
                        {"name": "prod", "cluster": {"server": server, **(cluster or {})}}],
           "contexts": [{"name": "ops@prod", "context": {"cluster": "prod", "user": "ops", "namespace": namespace}}],
           "users": [{"name": "ops", "user": user}]}
    with path.open("w") as out:
        YAML(typ="safe", pure=True).dump(doc, out)
    return path


async def test_kubeconfig_with_ca_data_and_token_over_tls(tmp_path: Path, deps: ProviderDeps,
                                                          ctx: StepContext) -> None:
    async with KubernetesFake(token=TOKEN, tls=True) as fake:
        assert isinstance(fake, KubernetesFake)
        fake.add_deployment("staging", "api", [f"{IMG}:1.0", f"{IMG}:1.1"])
        ca = base64.b64encode(fake.ca.cert_pem.bytes()).decode()
        path = _kubeconfig(tmp_path / "config", fake.url, user={"token": TOKEN},
                           cluster={"certificate-authority-data": ca})
        provider = make_provider(deps, kubeconfig=str(path))
        result = await provider.run("rollback", KubernetesRollbackParams(deployment="api"), ctx)
        assert result.output["namespace"] == "staging", "the context's namespace is the default"
        assert image(fake, "staging") == f"{IMG}:1.0"
        assert TOKEN in provider.secrets()
        assert provider.remediation("rollback", KubernetesRollbackParams(deployment="api")) == \
            Remediation("rollback", "kubernetes:staging/api")


async def test_kubeconfig_with_files_relative_to_it(tmp_path: Path, deps: ProviderDeps, ctx: StepContext) -> None:
    async with KubernetesFake(token=TOKEN, tls=True) as fake:
        assert isinstance(fake, KubernetesFake)
        fake.add_deployment("staging", "api", [f"{IMG}:1.0"])
        (tmp_path / "certs").mkdir()
        fake.ca.cert_pem.write_to_path(str(tmp_path / "certs" / "ca.crt"))
        (tmp_path / "token").write_text(TOKEN + "\n")
        path = _kubeconfig(tmp_path / "config", fake.url, user={"tokenFile": "token"},
                           cluster={"certificate-authority": "certs/ca.crt"})
        result = await make_provider(deps, kubeconfig=str(path)).run(
            "scale", KubernetesScaleParams(deployment="api", replicas=1), ctx)
        assert result.output["replicas"] == 1
        assert fake.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_kubeconfig_with_a_client_certificate(tmp_path: Path, deps: ProviderDeps, ctx: StepContext) -> None:
    async with KubernetesFake(tls=True, client_ca=True) as fake:
        assert isinstance(fake, KubernetesFake)
        fake.add_deployment("staging", "api", [f"{IMG}:1.0"])
        client = fake.ca.issue_cert("ops@example.com")
        key = client.private_key_pem.bytes()
        user = {"client-certificate-data": base64.b64encode(client.cert_chain_pems[0].bytes()).decode(),
                "client-key-data": base64.b64encode(key).decode()}
        path = _kubeconfig(tmp_path / "config", fake.url, user=user,
                           cluster={"certificate-authority-data": base64.b64encode(fake.ca.cert_pem.bytes()).decode()})
        provider = make_provider(deps, kubeconfig=str(path))
        result = await provider.run("restart", KubernetesRestartParams(deployment="api"), ctx)
        assert result.output["deployment"] == "api"
        assert "Authorization" not in fake.requests[0].headers
        assert key.decode().strip() in provider.secrets(), "the private key is redacted like a token"
        # without the certificate the fake refuses: 401, permanent
        fake.ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        anonymous = make_provider(deps, server=fake.url, token="not-the-token", ca_file=str(tmp_path / "ca.pem"))
        with pytest.raises(PermanentActionError, match="401, the credentials were refused"):
            await anonymous.run("restart", KubernetesRestartParams(deployment="api"), ctx)


async def test_insecure_skip_tls_verify(deps: ProviderDeps, ctx: StepContext) -> None:
    async with KubernetesFake(token=TOKEN, tls=True) as fake:
        assert isinstance(fake, KubernetesFake)
        fake.add_deployment("default", "api", [f"{IMG}:1.0"])
        strict = make_provider(deps, server=fake.url, token=TOKEN)
        # an untrusted server certificate is a configuration problem: permanent, and it says so
        with pytest.raises(PermanentActionError, match="certificate was not trusted"):
            await strict.run("scale", KubernetesScaleParams(deployment="api", replicas=2), ctx)
        loose = make_provider(deps, server=fake.url, token=TOKEN, insecure_skip_tls_verify=True)
        result = await loose.run("scale", KubernetesScaleParams(deployment="api", replicas=2), ctx)
        assert result.output["namespace"] == "default"


async def test_in_cluster_service_account(tmp_path: Path, deps: ProviderDeps, ctx: StepContext,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    async with KubernetesFake(token=TOKEN, tls=True) as fake:
        assert isinstance(fake, KubernetesFake)
        fake.add_deployment("ops", "api", [f"{IMG}:1.0", f"{IMG}:1.1"])
        fake.ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
        (tmp_path / "token").write_text(TOKEN)
        (tmp_path / "namespace").write_text("ops")
        monkeypatch.setattr(k8s, "SERVICE_ACCOUNT_DIR", tmp_path)
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(fake.port))
        provider = make_provider(deps, in_cluster=True)
        result = await provider.run("rollback", KubernetesRollbackParams(deployment="api"), ctx)
        assert result.output["namespace"] == "ops" and image(fake, "ops") == f"{IMG}:1.0"
        # the token file is read on every step: a rotated token is picked up
        fake.token = TOKEN + "-rotated"
        (tmp_path / "token").write_text(fake.token)
        await provider.run("restart", KubernetesRestartParams(deployment="api"), ctx)
        assert fake.requests[-1].headers["Authorization"] == f"Bearer {fake.token}"


@pytest.mark.parametrize(("user", "message"), [
    ({"exec": {"command": "aws", "args": ["eks", "get-token"]}}, "exec/auth-provider plugin"),
    ({}, "no credentials"),
])
def test_kubeconfig_users_that_cannot_work(tmp_path: Path, user: dict[str, Any], message: str) -> None:
    path = _kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", user=user)
    with pytest.raises(PermanentActionError, match=message):
        resolve_credentials(KubernetesConfig(kubeconfig=str(path)))


def test_credential_problems_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PermanentActionError, match="cannot read kubeconfig"):
        resolve_credentials(KubernetesConfig(kubeconfig=str(tmp_path / "missing")))
    path = _kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", user={"token": TOKEN})
    with pytest.raises(PermanentActionError, match="no context named 'nope'"):
        resolve_credentials(KubernetesConfig(kubeconfig=str(path), context="nope"))
    with pytest.raises(PermanentActionError, match="no API server"):
        resolve_credentials(KubernetesConfig(token=TOKEN))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(PermanentActionError, match="not running in a pod"):
        resolve_credentials(KubernetesConfig(in_cluster=True))
    # explicit fields override the kubeconfig
    creds = resolve_credentials(KubernetesConfig(kubeconfig=str(path), server="https://10.0.0.1:6443",
                                                 namespace="web", token="override-token"))
    assert (creds.server, creds.namespace, creds.token) == ("https://10.0.0.1:6443", "web", "override-token")


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="either in_cluster or kubeconfig"):
        KubernetesConfig(in_cluster=True, kubeconfig="/etc/kube/config")
    with pytest.raises(ValidationError, match="server"):
        KubernetesConfig.model_validate({"server": "10.0.0.1:6443"})
    assert not KubernetesConfig().has_credentials()
    assert KubernetesConfig(in_cluster=True).has_credentials()
    assert KubernetesConfig.model_validate({"token": TOKEN, "server": "https://k8s:6443"}).has_credentials()


# -- plan, params, remediation -------------------------------------------------------------------------
def test_plan(provider: KubernetesProvider, fake: KubernetesFake, ctx: StepContext) -> None:
    def plan(params: Any, verb: str) -> list[dict[str, Any]]:
        return [c.redacted(provider.secrets()) for c in provider.plan(verb, params, ctx)]

    restart = plan(KubernetesRestartParams(deployment="api", namespace="production"), "restart")
    assert [(c["method"], c["url"]) for c in restart] == [("GET", fake.url + DEPLOY), ("PATCH", fake.url + DEPLOY)]
    assert restart[1]["headers"]["Content-Type"] == "application/strategic-merge-patch+json"
    assert restart[1]["body"] == {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "<now, RFC 3339>"}}}}}
    rollback = plan(KubernetesRollbackParams(deployment="api", namespace="production", to_revision=2), "rollback")
    assert [c["method"] for c in rollback] == ["GET", "GET", "PATCH"]
    assert rollback[1]["url"].startswith(f"{fake.url}/apis/apps/v1/namespaces/production/replicasets?labelSelector=")
    assert rollback[2]["headers"]["Content-Type"] == "application/json-patch+json"
    assert "revision 2" in rollback[2]["body"][0]["value"]
    scale = plan(KubernetesScaleParams(deployment="api", namespace="production", replicas=2), "scale")
    assert scale[1] == {"method": "PATCH", "url": f"{fake.url}{DEPLOY}/scale", "body": {"spec": {"replicas": 2}},
                        "headers": {"Accept": "application/json", "Authorization": "***",
                                    "Content-Type": "application/merge-patch+json"}}
    assert TOKEN not in str([restart, rollback, scale])
    assert not fake.requests, "planning calls nothing"


def test_plan_without_reachable_credentials(deps: ProviderDeps, ctx: StepContext, tmp_path: Path) -> None:
    provider = make_provider(deps, kubeconfig=str(tmp_path / "missing"), namespace="web")
    calls = provider.plan("restart", KubernetesRestartParams(deployment="api"), ctx)
    assert calls[0].url == "https://<kubernetes API server>/apis/apps/v1/namespaces/web/deployments/api"


@pytest.mark.parametrize(("model", "raw", "field"), [
    (KubernetesRestartParams, {}, "deployment"),
    (KubernetesRestartParams, {"deployment": "API_server"}, "deployment"),
    (KubernetesRestartParams, {"deployment": "api", "namespace": "Prod"}, "namespace"),
    (KubernetesRollbackParams, {"deployment": "api", "to_revision": 0}, "to_revision"),
    (KubernetesRollbackParams, {"deployment": "api", "revision": 2}, "revision"),
    (KubernetesScaleParams, {"deployment": "api"}, "replicas"),
    (KubernetesScaleParams, {"deployment": "api", "replicas": -1}, "replicas"),
])
def test_params_validation(model: type[Any], raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(raw)
    assert field in str(info.value)


def test_params_descriptions() -> None:
    for model in KubernetesProvider.actions.values():
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"


def test_remediation(deps: ProviderDeps) -> None:
    provider = make_provider(deps, server="https://k8s.example.com", token=TOKEN, namespace="web")
    assert provider.remediation("restart", KubernetesRestartParams(deployment="api")) == \
        Remediation("restart", "kubernetes:web/api")
    assert provider.remediation("rollback", KubernetesRollbackParams(deployment="api", namespace="prod")) == \
        Remediation("rollback", "kubernetes:prod/api")
    assert provider.remediation("scale", KubernetesScaleParams(deployment="api", replicas=0)) == \
        Remediation("scale", "kubernetes:web/api")
