"""deploy/kubernetes against the Kubernetes v1.37 strict JSON schemas, against each other and the code; its
ConfigMaps rendered from the repository, loaded by responder, and run as the pod would run them."""

from __future__ import annotations

import asyncio
import copy
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from responder.config.loader import load_config
from tests.conftest import free_port
from tests.deploy.helpers import (
    KUBERNETES,
    ROOT,
    SECRET_NAME,
    config_port,
    dockerfile,
    env_of,
    env_refs,
    errors,
    health_paths,
    k8s_manifests,
    k8s_validator,
    last,
    load_module,
    project_version,
    runtime_stage,
    scripts_dir,
    stop,
    wait_for,
    yaml_docs,
    yaml_text,
    yaml_text_docs,
)

OBJECTS = k8s_manifests()
DEPLOYMENT = OBJECTS[("Deployment", "responder")]
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]
SECRET = OBJECTS[("Secret", "responder-secrets")]
RENDER = load_module(KUBERNETES / "render_configmaps.py")


@pytest.mark.parametrize("key", sorted(OBJECTS), ids=lambda k: f"{k[0]}/{k[1]}")
def test_valid_against_the_kubernetes_schema(key: tuple[str, str]) -> None:
    obj = OBJECTS[key]
    assert errors(k8s_validator(obj), obj) == []


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["spec"].update(replicas="two"), "'two' is not of type 'integer'"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagePullPolice="Always"),
     "'imagePullPolice' was unexpected"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(containerPort="http"),
     "'http' is not of type 'integer'"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"].update(httpGets={}),
     "'httpGets' was unexpected"),
])
def test_the_strict_schema_catches_mistakes(mutate: Any, expected: str) -> None:
    broken = copy.deepcopy(DEPLOYMENT)
    mutate(broken)
    found = errors(k8s_validator(broken), broken)
    assert found and expected in " ".join(found), found


def test_kustomization_lists_every_manifest_once() -> None:
    kustomization = yaml_docs(KUBERNETES / "kustomization.yaml")[0]
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "namespace", "images", "labels"}
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(resources) == on_disk
    kinds = {kind for kind, _ in OBJECTS}
    assert kinds >= {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "StatefulSet"}


def test_deployment_two_hardened_replicas() -> None:
    assert DEPLOYMENT["spec"]["replicas"] == 2
    assert DEPLOYMENT["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    user = last(dockerfile(), "USER").args.split(":")
    pod_security = POD["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert [str(pod_security["runAsUser"]), str(pod_security["runAsGroup"])] == user, "the Dockerfile's USER"
    assert pod_security["seccompProfile"]["type"] == "RuntimeDefault"
    security = CONTAINER["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {m["mountPath"] for m in CONTAINER["volumeMounts"]} >= {"/tmp"}, "a writable /tmp on a read-only root"
    resources = CONTAINER["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
    assert CONTAINER["image"] == f"responder:{project_version()}"
    assert POD["automountServiceAccountToken"] is False


def test_probes_port_and_shutdown_match_the_code() -> None:
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert ports == {"http": config_port()}
    assert last(dockerfile(), "EXPOSE").args == str(config_port())
    served = health_paths()
    assert CONTAINER["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert CONTAINER["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert CONTAINER["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/healthz", "/readyz"} <= served
    pre_stop = CONTAINER["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and int(pre_stop[1]) < POD["terminationGracePeriodSeconds"] <= 60


def test_service_and_pdb_select_the_pods() -> None:
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    selector = DEPLOYMENT["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    service = OBJECTS[("Service", "responder")]
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = OBJECTS[("PodDisruptionBudget", "responder")]
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert 1 <= pdb["spec"]["minAvailable"] < DEPLOYMENT["spec"]["replicas"]


def test_redis_statefulset_keeps_an_append_only_file() -> None:
    redis = OBJECTS[("StatefulSet", "redis")]
    container = redis["spec"]["template"]["spec"]["containers"][0]
    args = " ".join(container["args"])
    assert "--appendonly yes" in args and "--dir /data" in args
    assert {"mountPath": "/data", "name": "data"}.items() <= container["volumeMounts"][0].items()
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert redis["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    service = OBJECTS[("Service", redis["spec"]["serviceName"])]
    url = urlsplit(SECRET["stringData"]["REDIS_URL"])
    assert url.scheme == "redis" and url.hostname == service["metadata"]["name"]
    assert url.port == service["spec"]["ports"][0]["port"] == container["ports"][0]["containerPort"]


def test_secret_holds_placeholders_only() -> None:
    data = SECRET["stringData"]
    assert "data" not in SECRET, "stringData placeholders, never base64 of a real value"
    for key, value in data.items():
        if key == "REDIS_URL":
            assert urlsplit(value).password is None
        else:
            assert value == "", f"{key} must stay an empty placeholder in the repository"
    assert {name for name in data if SECRET_NAME.search(name)} >= {"RESPONDER_API_TOKEN", "SLACK_BOT_TOKEN"}
    for entry in CONTAINER["env"]:
        assert not SECRET_NAME.search(entry["name"]), f"{entry['name']} belongs in the Secret"


def rendered() -> list[dict[str, Any]]:
    return [doc for doc in yaml_docs(KUBERNETES / "configmap.yaml") if doc["kind"] == "ConfigMap"]


def test_configmaps_render_the_repository_config_exactly() -> None:
    """render_configmaps.py keeps every file's text; configmap.yaml carries the repository's files (same
    file names, same content once parsed: comments may differ) — re-render it when they change."""
    fresh = yaml_text_docs(RENDER.render(ROOT))
    for doc in fresh:
        folder = RENDER.CONFIGMAPS[doc["metadata"]["name"]]
        for key, text in doc["data"].items():
            assert text == (ROOT / folder / key).read_text(), f"{folder}/{key} does not round-trip"
    committed = {doc["metadata"]["name"]: doc.get("data") or {} for doc in rendered()}
    current = {doc["metadata"]["name"]: doc.get("data") or {} for doc in fresh}
    hint = "deploy/kubernetes/configmap.yaml is stale: python3 deploy/kubernetes/render_configmaps.py > " \
           "deploy/kubernetes/configmap.yaml"
    assert {n: sorted(d) for n, d in committed.items()} == {n: sorted(d) for n, d in current.items()}, hint
    for name, files in current.items():
        for key, text in files.items():
            assert yaml_text(committed[name][key]) == yaml_text(text), f"{hint} ({name}: {key})"


def test_render_keeps_awkward_text(tmp_path: Path) -> None:
    texts = {"responder.yaml": "  indented first line\n", "rules/a.yaml": "no newline at end",
             "rules/b.yaml": "two newlines\n\n", "rules/c.yaml": "\nleading blank line\n\n\n  x: 'y'\n"}
    for name, text in texts.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    docs = {d["metadata"]["name"]: d["data"] for d in yaml_text_docs(RENDER.render(tmp_path))}
    assert docs["responder-config"]["responder.yaml"] == texts["responder.yaml"]
    for key in ("a.yaml", "b.yaml", "c.yaml"):
        assert docs["responder-rules"][key] == texts[f"rules/{key}"]
    assert docs["responder-probes"] == {}
    (tmp_path / "rules" / "a_test.yaml").write_text("tests: []\n")  # a pipeline test is not configuration
    assert "a_test.yaml" not in yaml_text_docs(RENDER.render(tmp_path))[1]["data"]


def materialize(root: Path) -> Path:
    """Lay the ConfigMaps out under `root` as the Deployment's volumeMounts place them in the pod."""
    configmaps = {doc["metadata"]["name"]: doc.get("data") or {} for doc in rendered()}
    volumes = {v["name"]: v["configMap"]["name"] for v in POD["volumes"] if "configMap" in v}
    for mount in CONTAINER["volumeMounts"]:
        if mount["name"] not in volumes:
            continue
        assert mount.get("readOnly") is True, f"{mount['mountPath']} must be read-only"
        data = configmaps[volumes[mount["name"]]]
        target = root / mount["mountPath"].lstrip("/")
        if "subPath" in mount:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[mount["subPath"]])
        else:
            target.mkdir(parents=True, exist_ok=True)
            for key, text in data.items():
                (target / key).write_text(text)
    config = next(e["value"] for e in CONTAINER["env"] if e["name"] == "RESPONDER_CONFIG")
    assert config == env_of(dockerfile(), runtime_stage(dockerfile()))["RESPONDER_CONFIG"]
    return root / config.lstrip("/")


def pod_env() -> dict[str, str]:
    """The container's environment: its env entries, then the Secret through envFrom."""
    env = {e["name"]: e["value"] for e in CONTAINER["env"]}
    secret_refs = [ref["secretRef"]["name"] for ref in CONTAINER["envFrom"]]
    assert secret_refs == [SECRET["metadata"]["name"]]
    return env | SECRET["stringData"]


def test_every_variable_the_config_uses_is_provided() -> None:
    refs: set[str] = set()
    for doc in rendered():
        for text in (doc.get("data") or {}).values():
            refs |= env_refs(yaml_text(text))
    provided = pod_env()
    missing = sorted(refs - set(provided))
    assert not missing, f"referenced by the ConfigMaps but neither in the Deployment's env nor the Secret: {missing}"
    assert "REDIS_URL" in refs and "REDIS_URL" in (ROOT / "README.md").read_text()
    assert "SENTRY_DSN" in provided  # read by responder/app.py, not by the config


def test_mounted_configmaps_load_cleanly(tmp_path: Path) -> None:
    config = materialize(tmp_path)
    loaded = load_config(config, env=pod_env())
    assert loaded.rules and loaded.playbooks and loaded.probes
    bundled = load_config(ROOT / "responder.yaml", env=pod_env())
    assert sorted(r.id for r in loaded.rules) == sorted(r.id for r in bundled.rules)
    assert sorted(loaded.playbooks) == sorted(bundled.playbooks)
    assert sorted(loaded.probes) == sorted(bundled.probes)


async def test_the_pod_starts_answers_its_probes_and_stops_on_sigterm(tmp_path: Path, redis_url: str) -> None:
    """The image's CMD with the pod's environment and the ConfigMaps where the mounts put them; only the
    listen address (loopback), the Redis (this test's) and the port ($PORT, which the CMD honours) differ."""
    config = materialize(tmp_path)
    port = free_port()
    env = pod_env() | {"RESPONDER_CONFIG": str(config), "RESPONDER_HOST": "127.0.0.1", "REDIS_URL": redis_url,
                       "PORT": str(port), "HOME": str(tmp_path),
                       "PATH": f"{scripts_dir()}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    cmd = json.loads(last(dockerfile(), "CMD").args)
    log = (tmp_path / "pod.log").open("w")
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, cwd=str(tmp_path), stdout=log, stderr=log)
    try:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = CONTAINER[probe]["httpGet"]["path"]
            assert await wait_for(f"http://127.0.0.1:{port}{path}") == 200, (probe, (tmp_path / "pod.log").read_text())
    finally:
        returncode = await stop(proc, POD["terminationGracePeriodSeconds"])
        log.close()
    assert returncode == 0, (tmp_path / "pod.log").read_text()[-2000:]
