"""shell.run: argv only, an environment allow-list, timeouts that kill the process group, exit codes."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from responder.actions.base import ProviderDeps, StepContext, call_once
from responder.actions.shell import ShellConfig, ShellProvider, ShellRunParams
from responder.errors import PermanentActionError, RetryableActionError


def make(deps: ProviderDeps, **config: Any) -> ShellProvider:
    return ShellProvider(ShellConfig.model_validate({"enabled": True, **config}), deps)


def run_params(code: str, **extra: Any) -> ShellRunParams:
    return ShellRunParams.model_validate({"argv": [sys.executable, "-c", code], **extra})


async def test_runs_argv_without_a_shell(deps: ProviderDeps, ctx: StepContext) -> None:
    # a shell would expand $HOME and split on `;`: argv passes the text through untouched
    code = "import sys; print(sys.argv[1:])"
    params = run_params(code, argv=[sys.executable, "-c", code, "$HOME; rm -rf /"])
    result = await call_once(make(deps), "run", params, ctx, 10)
    assert result.output["exit_code"] == 0
    assert result.output["output"].strip() == "['$HOME; rm -rf /']"


def test_a_command_string_is_rejected() -> None:
    with pytest.raises(ValidationError):
        ShellRunParams.model_validate({"argv": "systemctl restart worker"})
    with pytest.raises(ValidationError):
        ShellRunParams.model_validate({"argv": []})


async def test_environment_is_an_allow_list(deps: ProviderDeps, ctx: StepContext,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAILWAY_TOKEN", "must-not-leak-123456")
    monkeypatch.setenv("DEPLOY_ENV", "production")
    code = "import os; print(sorted(k for k in os.environ if k in ('RAILWAY_TOKEN', 'DEPLOY_ENV', 'EXTRA')))"
    result = await call_once(make(deps, env_allow=["DEPLOY_ENV"]), "run", run_params(code, env={"EXTRA": "1"}),
                             ctx, 10)
    assert result.output["output"].strip() == "['DEPLOY_ENV', 'EXTRA']"


async def test_exit_codes(deps: ProviderDeps, ctx: StepContext) -> None:
    provider = make(deps)
    with pytest.raises(PermanentActionError, match="exited with 3: boom"):
        await call_once(provider, "run", run_params("import sys; print('boom'); sys.exit(3)"), ctx, 10)
    with pytest.raises(RetryableActionError, match="exited with 75"):
        await call_once(provider, "run", run_params("import sys; sys.exit(75)", retry_on_exit=[75]), ctx, 10)
    with pytest.raises(PermanentActionError, match="cannot start /nonexistent/tool"):
        await call_once(provider, "run", ShellRunParams(argv=["/nonexistent/tool"]), ctx, 10)


async def test_timeout_kills_the_process_group(deps: ProviderDeps, ctx: StepContext, tmp_path: Any) -> None:
    marker = tmp_path / "grandchild-survived"
    grandchild = tmp_path / "grandchild.py"
    grandchild.write_text(f"import time\ntime.sleep(1.5)\nopen({str(marker)!r}, 'w').close()\n")
    # the command spawns a grandchild that writes the marker after 1.5 s unless killed with the group
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, {str(grandchild)!r}]); time.sleep(30)"
    with pytest.raises(RetryableActionError, match=r"ran past 0\.3s and was killed"):
        await call_once(make(deps), "run", run_params(code, timeout="300ms"), ctx, 10)
    await asyncio.sleep(1.8)
    assert not marker.exists()


def test_disabled_unless_enabled() -> None:
    assert not ShellConfig().has_credentials()
    assert ShellConfig(enabled=True).has_credentials()


async def test_disabled_shell_steps_are_skipped(make_config: Any, make_app: Any) -> None:
    from tests.playbooks.test_runner import open_incident

    playbook = ("playbooks:\n  - id: p\n    steps:\n"
                "      - {name: restart, action: shell.run, with: {argv: [systemctl, restart, worker]}}\n")
    _, services = await make_app(make_config({"playbooks/p.yaml": playbook}))
    incident = await open_incident(services, "p")
    run_id = await services.runner.start(incident, "p", None)
    await services.runner.drain()
    record = await services.runs.step_record(run_id, "restart")
    assert record["status"] == "skipped" and "providers.shell is not configured" in record["reason"]
