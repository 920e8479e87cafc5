"""Loading and parsing the deploy files (Dockerfile, compose, Kubernetes, fly.toml, railway.json) for the tests."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shlex
import signal
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import jsonschema
from referencing import Registry, Resource
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
K8S_SCHEMAS = SCHEMAS / "kubernetes" / "v1.37.0-strict"

#: ${VAR} / ${VAR:-default}, as responder's config loader expands them
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
#: names that must never get a value baked into an image or a committed file
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ROUTING_KEY|DSN|PRIVATE", re.IGNORECASE)


def yaml_docs(path: Path) -> list[Any]:
    """Every document of a YAML file as plain dicts/lists (merge keys resolved), empty ones dropped."""
    return [doc for doc in YAML(typ="safe", pure=True).load_all(path.read_text()) if doc is not None]


def yaml_text(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def yaml_text_docs(text: str) -> list[Any]:
    return [doc for doc in YAML(typ="safe", pure=True).load_all(text) if doc is not None]


def errors(validator: jsonschema.protocols.Validator, instance: Any) -> list[str]:
    """Every schema violation as 'path: message', sorted (empty when valid)."""
    return sorted(f"{e.json_path}: {e.message}" for e in validator.iter_errors(instance))


@cache
def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@cache
def k8s_registry() -> Registry:
    definitions = json.loads((K8S_SCHEMAS / "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


def k8s_schema_file(obj: dict[str, Any]) -> Path:
    """The strict schema of a manifest's kind, named as kubernetes-validate names them."""
    group_version = str(obj["apiVersion"])
    group, _, version = group_version.rpartition("/")
    suffix = f"{group.split('.')[0]}-{version}" if group else version
    return K8S_SCHEMAS / f"{str(obj['kind']).lower()}-{suffix}.json"


def k8s_validator(obj: dict[str, Any]) -> jsonschema.Draft202012Validator:
    path = k8s_schema_file(obj)
    if not path.is_file():
        raise AssertionError(f"no vendored schema for {obj['apiVersion']} {obj['kind']} ({path.name}): "
                             "add the kind to KINDS in tests/deploy/schemas/refresh.py and run it")
    schema = json.loads(path.read_text())
    return jsonschema.Draft202012Validator(schema, registry=k8s_registry())


def k8s_manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object for every resource kustomization.yaml lists."""
    kustomization = yaml_docs(KUBERNETES / "kustomization.yaml")[0]
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for obj in yaml_docs(KUBERNETES / resource):
            key = (obj["kind"], obj["metadata"]["name"])
            assert key not in objects, f"{key} defined twice"
            objects[key] = obj
    return objects


def env_refs(node: Any) -> set[str]:
    """Names of the ${VARS} in the values of parsed YAML (comments are not values)."""
    if isinstance(node, dict):
        return set().union(set(), *(env_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(set(), *(env_refs(v) for v in node))
    if isinstance(node, str):
        return set(ENV_REF.findall(node))
    return set()


def bundled_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml_docs(ROOT / "responder.yaml")[0]
    return config


def config_port() -> int:
    return int(bundled_config()["server"]["port"])


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def health_paths() -> set[str]:
    """The paths responder's health routes answer (responder/api/health.py), read from the router."""
    from aiohttp import web

    from responder.api.health import setup_health_routes

    app = web.Application()
    setup_health_routes(app)
    return {route.resource.canonical for route in app.router.routes() if route.resource is not None}


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- Dockerfile --------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    stage: int        # 0-based index of the FROM it belongs to
    keyword: str      # upper case
    args: str         # continuation lines joined
    line: int


def dockerfile(path: Path = ROOT / "Dockerfile") -> list[Instruction]:
    out: list[Instruction] = []
    stage, buf, start = -1, "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.rstrip()
        stripped = line.strip()
        if stripped.startswith("#") or (not buf and not stripped):
            continue  # comments (also inside a continuation, as Docker skips them) and blank lines
        if line.endswith("\\"):
            start = start or number
            buf += line[:-1].strip() + " "
            continue
        text = (buf + stripped).strip()
        keyword, _, args = text.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        out.append(Instruction(stage, keyword.upper(), args.strip(), start or number))
        buf, start = "", 0
    return out


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    """`--from=build --chown=a b c` -> ({"from": "build", "chown": "a"}, ["b", "c"])."""
    words = shlex.split(args)
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    return flags, words


def env_of(instructions: list[Instruction], stage: int) -> dict[str, str]:
    """ENV key=value pairs of one stage (values as written, $VARS not expanded)."""
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.stage == stage and ins.keyword == "ENV":
            for word in shlex.split(ins.args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def runtime_stage(instructions: list[Instruction]) -> int:
    return max(ins.stage for ins in instructions)


def last(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [ins for ins in instructions if ins.keyword == keyword]
    assert found, f"the Dockerfile has no {keyword}"
    return found[-1]


def image_paths(instructions: list[Instruction]) -> dict[str, Path]:
    """Where the runtime stage's COPYs from the build context put things: image path -> repository path."""
    stage = runtime_stage(instructions)
    mapping: dict[str, Path] = {}
    for ins in instructions:
        if ins.stage == stage and ins.keyword == "COPY":
            flags, words = split_flags(ins.args)
            if "from" in flags:
                continue
            *sources, dest = words
            for source in sources:
                mapping[dest.rstrip("/")] = ROOT / source.rstrip("/")
    return mapping


def to_repo_path(image_path: str, mapping: dict[str, Path]) -> Path:
    for dest in sorted(mapping, key=len, reverse=True):
        if image_path == dest or image_path.startswith(dest + "/"):
            return mapping[dest] / image_path[len(dest):].lstrip("/")
    raise AssertionError(f"{image_path} is not copied into the image by the Dockerfile")


# --- .dockerignore (the semantics of moby's patternmatcher) --------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1:end].replace("\\", "\\\\") + "]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out)


def dockerignore(path: Path = ROOT / ".dockerignore") -> list[tuple[bool, re.Pattern[str]]]:
    """(exclusion?, regex) per pattern line: `!pattern` re-includes."""
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((not negate, _pattern_regex(pattern)))
    return rules


def in_build_context(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether a file (path relative to the context) is sent to the builder: the last matching rule wins,
    and a rule matches a path when it matches the path or one of its parent folders."""
    parts = relative.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for exclude, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            excluded = exclude
    return not excluded


def wheel_inputs() -> list[str]:
    """What `pip wheel .` reads from the repository (pyproject.toml, its readme, the packages and the
    force-included folders), those that exist."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    paths = {"pyproject.toml", project["project"]["readme"], *wheel["packages"], *wheel.get("force-include", {})}
    return sorted(p for p in paths if (ROOT / p).exists())


def copy_sources(instructions: list[Instruction], stage: int) -> list[str]:
    """Build-context sources of a stage's COPY instructions (not the --from=<stage> ones)."""
    return [word for ins in instructions if ins.stage == stage and ins.keyword == "COPY"
            and "from" not in split_flags(ins.args)[0] for word in split_flags(ins.args)[1][:-1]]


def image_inputs(instructions: list[Instruction]) -> list[str]:
    """Every repository path an image build reads: the wheel's inputs and the runtime stage's COPYs."""
    runtime = copy_sources(instructions, runtime_stage(instructions))
    return sorted(set(wheel_inputs()) | {source.rstrip("/") for source in runtime})


def context_files(sources: list[str]) -> Iterator[str]:
    """Repository files under the given context-relative sources."""
    for source in sources:
        path = ROOT / source
        if path.is_file():
            yield source.rstrip("/")
        else:
            for file in sorted(path.rglob("*")):
                if file.is_file() and "__pycache__" not in file.parts:
                    yield str(file.relative_to(ROOT))


# --- running the daemon as a container would -------------------------------------------------------------


def scripts_dir() -> Path:
    """Where this Python's console scripts (`responder`, `hadolint`) are installed."""
    return Path(sysconfig.get_path("scripts"))


async def wait_for(url: str, status: int = 200, attempts: int = 200) -> int:
    """Poll `url` until it answers `status`; return the last status seen (0: never answered)."""
    seen = 0
    async with aiohttp.ClientSession() as http:
        for _ in range(attempts):
            try:
                async with http.get(url) as reply:
                    seen = reply.status
                    if seen == status:
                        return seen
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    return seen


async def run_healthcheck(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 15)
    return int(proc.returncode or 0), out.decode()


async def stop(proc: asyncio.subprocess.Process, grace: float) -> int:
    """SIGTERM, as `docker stop` / the kubelet send it; SIGKILL after `grace` seconds (then fail)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"the daemon did not exit within {grace}s of SIGTERM") from None


def python() -> str:
    return sys.executable
