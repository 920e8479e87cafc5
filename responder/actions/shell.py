"""`shell.run`: run a local command as an argv list (never through a shell), with a timeout.

Disabled unless `providers.shell.enabled: true`. The child gets only the environment variables named
in `providers.shell.env_allow` (plus PATH), never the daemon's secrets. Exit code 0 is success; a
non-zero exit is permanent unless listed in `retry_on_exit`; running past `timeout` kills the
process group and is retryable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from datetime import timedelta

from pydantic import Field

from responder.actions.base import ActionProvider, ActionResult, PlannedCall, StepContext, VendorConfig
from responder.config.base import Duration, StrictModel
from responder.errors import PermanentActionError, RetryableActionError

__all__ = ["ShellConfig", "ShellProvider", "ShellRunParams"]


class ShellConfig(VendorConfig):
    enabled: bool = Field(default=False, description="shell.run steps are refused unless this is true")
    env_allow: list[str] = Field(default_factory=list, description="environment variables passed to commands")
    cwd: str | None = Field(default=None, description="working directory of commands")

    def has_credentials(self) -> bool:
        return self.enabled


class ShellRunParams(StrictModel):
    argv: list[str] = Field(min_length=1, description="program and arguments; no shell is involved")
    timeout: Duration = Field(default=timedelta(seconds=60))
    env: dict[str, str] = Field(default_factory=dict, description="extra variables for this command")
    retry_on_exit: list[int] = Field(default_factory=list, description="exit codes worth another attempt")


class ShellProvider(ActionProvider):
    name = "shell"
    Config = ShellConfig
    actions = {"run": ShellRunParams}

    def _environment(self, params: ShellRunParams) -> dict[str, str]:
        assert isinstance(self.config, ShellConfig)
        allowed = {"PATH", *self.config.env_allow}
        return {**{k: v for k, v in os.environ.items() if k in allowed}, **params.env}

    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        assert isinstance(params, ShellRunParams)
        return [PlannedCall("EXEC", " ".join(params.argv), {"argv": params.argv, "env": sorted(params.env)})]

    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        assert isinstance(params, ShellRunParams) and isinstance(self.config, ShellConfig)
        program = params.argv[0]
        try:
            proc = await asyncio.create_subprocess_exec(
                *params.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=self._environment(params), cwd=self.config.cwd,
                start_new_session=True)
        except OSError as exc:
            raise PermanentActionError(f"shell: cannot start {program}: {exc.strerror}") from None
        try:
            async with asyncio.timeout(params.timeout.total_seconds()):
                out, _ = await proc.communicate()
        except (TimeoutError, asyncio.CancelledError) as exc:
            self._kill(proc)
            await proc.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise RetryableActionError(f"shell: {program} ran past {params.timeout.total_seconds():g}s and was "
                                       "killed") from None
        text = out.decode(errors="replace")
        tail = text[-2000:]
        code = proc.returncode
        if code != 0:
            message = f"shell: {program} exited with {code}: {tail[-300:].strip()}"
            if code in params.retry_on_exit:
                raise RetryableActionError(message)
            raise PermanentActionError(message)
        return ActionResult(f"{program} exited 0", {"exit_code": 0, "output": tail})

    @staticmethod
    def _kill(proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
