"""deploy/fly.toml (parsed with tomllib) and deploy/railway.json against schemas written from each platform's
configuration reference (neither publishes one for offline use; see tests/deploy/schemas/README.md), and
against the code and the Dockerfile."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.helpers import (
    DEPLOY,
    ROOT,
    SECRET_NAME,
    config_port,
    dockerfile,
    env_of,
    errors,
    health_paths,
    image_inputs,
    last,
    runtime_stage,
    schema_validator,
)

FLY = tomllib.loads((DEPLOY / "fly.toml").read_text())
RAILWAY = json.loads((DEPLOY / "railway.json").read_text())


def test_fly_toml_valid() -> None:
    assert errors(schema_validator("fly.schema.json"), FLY) == []


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["http_service"].update(internal_port="8080"), "'8080' is not of type 'integer'"),
    (lambda d: d["http_service"].update(internal_prot=8080), "'internal_prot' was unexpected"),
    (lambda d: d["http_service"]["checks"][0].update(interval="15 seconds"), "does not match"),
    (lambda d: d["env"].update(FLY_REGION="iad"), "FLY_REGION"),
    (lambda d: d.update(kill_signal="SIGHUP"), "'SIGHUP' is not one of"),
])
def test_fly_schema_catches_mistakes(mutate: Any, expected: str) -> None:
    broken = copy.deepcopy(FLY)
    mutate(broken)
    found = errors(schema_validator("fly.schema.json"), broken)
    assert found and expected in " ".join(found), found


def test_fly_matches_the_image_and_the_code() -> None:
    instructions = dockerfile()
    service = FLY["http_service"]
    assert service["internal_port"] == config_port()
    assert [c["path"] for c in service["checks"]] == ["/healthz"]
    assert {c["path"] for c in FLY["checks"].values()} == {"/readyz"}
    assert {"/healthz", "/readyz"} <= health_paths()
    assert all(c["port"] == config_port() for c in FLY["checks"].values())
    assert (DEPLOY / FLY["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile"
    assert FLY["kill_signal"] == last(instructions, "STOPSIGNAL").args
    assert FLY["kill_timeout"] >= 30
    image_env = env_of(instructions, runtime_stage(instructions))
    assert FLY["env"]["RESPONDER_CONFIG"] == image_env["RESPONDER_CONFIG"]
    assert FLY["env"]["RESPONDER_HOST"] == "0.0.0.0"
    assert not [k for k in FLY["env"] if SECRET_NAME.search(k) or k == "REDIS_URL"], "secrets: fly secrets set"
    # responder runs probes and timers: its Machines must keep running
    assert service["auto_stop_machines"] in (False, "off") and service["min_machines_running"] >= 2


def test_railway_json_valid() -> None:
    assert errors(schema_validator("railway.schema.json"), RAILWAY) == []


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["build"].update(builder="HEROKU"), "'HEROKU' is not one of"),
    (lambda d: d["deploy"].update(drainingSeconds="10"), "'10' is not of type 'number', 'null'"),
    (lambda d: d["deploy"].update(healthCheckPath="/healthz"), "'healthCheckPath' was unexpected"),
    (lambda d: d["deploy"].update(restartPolicyType="on_failure"), "'on_failure' is not one of"),
])
def test_railway_schema_catches_mistakes(mutate: Any, expected: str) -> None:
    broken = copy.deepcopy(RAILWAY)
    mutate(broken)
    found = errors(schema_validator("railway.schema.json"), broken)
    assert found and expected in " ".join(found), found


def test_railway_builds_the_dockerfile_and_checks_healthz() -> None:
    assert RAILWAY["$schema"] == "https://railway.com/railway.schema.json"
    assert RAILWAY["build"]["builder"] == "DOCKERFILE"
    assert (ROOT / RAILWAY["build"]["dockerfilePath"]) == ROOT / "Dockerfile"  # paths are from the repository root
    deploy = RAILWAY["deploy"]
    assert deploy["healthcheckPath"] == "/healthz" and "/healthz" in health_paths()
    assert deploy["restartPolicyType"] == "ON_FAILURE" and deploy["restartPolicyMaxRetries"] >= 1
    # Railway health-checks the port in $PORT, which the image's CMD listens on when it is set
    assert "${PORT:+--port" in last(dockerfile(), "CMD").args
    # a change to anything the image is built from triggers a deploy
    watched = set(RAILWAY["build"]["watchPatterns"])
    for source in [*image_inputs(dockerfile()), "Dockerfile"]:
        pattern = f"{source}/**" if (ROOT / source).is_dir() else source
        assert pattern in watched or f"{Path(source).parent}/**" in watched, source
