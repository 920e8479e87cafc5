"""deploy/docker-compose.yml against the Compose Specification JSON schema, and against the code and Dockerfile."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.helpers import (
    DEPLOY,
    ROOT,
    SECRET_NAME,
    config_port,
    dockerfile,
    env_of,
    errors,
    image_paths,
    last,
    project_version,
    runtime_stage,
    schema_validator,
    split_flags,
    to_repo_path,
    yaml_docs,
)

COMPOSE = DEPLOY / "docker-compose.yml"


def compose() -> dict[str, Any]:
    return yaml_docs(COMPOSE)[0]


def responders(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in doc["services"].items() if name.startswith("responder")}


def test_valid_against_the_compose_spec() -> None:
    assert errors(schema_validator("compose-spec.json"), compose()) == []


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("services", "responder-1", "ports"), 8080, "is not of type 'array'"),
    (("services", "redis", "depends_on"), {"responder-1": {"condition": "when_ready"}}, "when_ready"),
    (("services", "redis", "helthcheck"), {"test": ["CMD", "true"]}, "helthcheck"),
    (("services", "responder-1", "cap_drop"), "ALL", "'ALL' is not of type 'array'"),
    (("services", "responder-1", "volumes"), [{"type": "bind", "source": "..", "target": "/x", "readonly": True}],
     "is not valid under any of the given schemas"),
])
def test_the_schema_catches_mistakes(path: tuple[str, ...], value: Any, expected: str) -> None:
    doc = copy.deepcopy(compose())
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    found = errors(schema_validator("compose-spec.json"), doc)
    assert found and expected in " ".join(found), found


def test_two_replicas_and_redis_with_aof_on_a_volume() -> None:
    doc = compose()
    replicas = responders(doc)
    assert len(replicas) == 2
    redis = doc["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    volume = next(v for v in redis["volumes"] if v.endswith(":/data"))
    assert volume.split(":")[0] in doc["volumes"], "a named volume, so the AOF outlives the container"
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"] or "ping" in redis["healthcheck"]["test"]
    host_ports = set()
    for name, svc in replicas.items():
        url = urlsplit(svc["environment"]["REDIS_URL"])
        assert url.scheme == "redis" and url.hostname == "redis" and (url.port or 6379) == 6379, name
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        published = [p.rsplit(":", 2) for p in svc["ports"]]
        assert all(container == str(config_port()) for *_, container in published), name
        host_ports |= {host for _, host, _ in published}
        assert svc["image"] == f"responder:{project_version()}"
        assert svc["build"]["context"] == ".." and (COMPOSE.parent / svc["build"]["context"] / "Dockerfile").is_file()
    assert len(host_ports) == 2, "each replica on its own host port"


def test_replicas_run_like_the_image_says() -> None:
    instructions = dockerfile()
    stage = runtime_stage(instructions)
    image_env = env_of(instructions, stage)
    mapping = image_paths(instructions)
    health = last(instructions, "HEALTHCHECK").args.split(" CMD ", 1)[1]
    for name, svc in responders(compose()).items():
        assert svc["user"] == last(instructions, "USER").args, name
        assert svc["read_only"] is True and "/tmp" in svc["tmpfs"] and svc["cap_drop"] == ["ALL"]
        assert svc["environment"]["RESPONDER_CONFIG"] == image_env["RESPONDER_CONFIG"]
        assert svc["stop_signal"] == last(instructions, "STOPSIGNAL").args
        assert svc["healthcheck"]["test"] == ["CMD", *json.loads(health)], name
        assert set(svc["healthcheck"]) >= {"interval", "timeout", "retries", "start_period"}
        config_dir = str(Path(image_env["RESPONDER_CONFIG"]).parent)
        targets = {}
        state = [v for v in svc["volumes"] if v["type"] == "volume"]
        # the outage spool's folder ($XDG_STATE_HOME): a named volume of the replica's own, writable
        assert [v["target"] for v in state] == [image_env["XDG_STATE_HOME"]], name
        assert state[0]["source"] == f"{name}-state" and not state[0].get("read_only")
        for volume in svc["volumes"]:
            if volume in state:
                continue
            assert volume["read_only"] is True, f"{name}: {volume['target']} must be mounted read-only"
            source = (COMPOSE.parent / volume["source"]).resolve()
            assert source.exists(), source
            assert volume["target"] == config_dir or volume["target"].startswith(config_dir + "/")
            # what is mounted replaces exactly what the image carries there
            assert to_repo_path(volume["target"], mapping) == source
            targets[volume["target"]] = source
        assert set(targets) == {f"{config_dir}/{p}" for p in ("responder.yaml", "rules", "playbooks", "probes")}


def test_no_secrets_in_the_compose_file() -> None:
    doc = compose()
    for name, svc in doc["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            assert not (SECRET_NAME.search(key) and value), f"{name}: {key} has a value; put it in deploy/.env"
        for env_file in svc.get("env_file", []):
            assert env_file["path"] == ".env" and env_file["required"] is False
    ignore = (ROOT / ".gitignore").read_text().splitlines()
    assert {".env", "deploy/.env", "*.env"} & {line.strip() for line in ignore}, \
        "deploy/.env (the compose secrets) must be git-ignored"
    for name, svc in responders(doc).items():
        assert urlsplit(svc["environment"]["REDIS_URL"]).password is None, name


def test_dockerfile_copy_sources_exist() -> None:
    for ins in dockerfile():
        if ins.keyword == "COPY" and "from" not in split_flags(ins.args)[0]:
            for source in split_flags(ins.args)[1][:-1]:
                assert (ROOT / source).exists(), f"Dockerfile line {ins.line}: {source} does not exist"
