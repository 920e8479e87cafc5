"""The `verify` step: check health again and again until it passes or a deadline passes.

    - name: verify
      action: verify
      with: {url: "https://api.example.com/health", json: {"checks.database": healthy}, within: 3m}
      on_failure:
        - {name: page, action: pagerduty.trigger, with: {severity: critical}}

Outcomes: **success** (the check passed `successes` times in a row), **failure** (it answered but stayed
unhealthy until `within` ran out: the step fails, so `on_failure` runs) and **inconclusive** (nothing
answered at all; treated as a failure unless `inconclusive: pass`). A named `probe` runs one of the
probes defined under probes/ instead of an ad-hoc URL check.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import aiohttp
from pydantic import Field, model_validator

from responder.actions.base import ActionResult, CheckOutcome, PlannedCall, ProviderDeps
from responder.config.base import Duration, StrictModel, format_duration
from responder.errors import PermanentActionError
from responder.probes.checks import http_check
from responder.probes.model import HttpCheck

__all__ = ["VerifyParams", "run_verify"]


class VerifyParams(StrictModel):
    url: str | None = Field(default=None, description="an HTTP health endpoint to check")
    probe: str | None = Field(default=None, description="or: the id of a probe to run")
    method: Literal["GET", "HEAD", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    status: list[int] = Field(default_factory=lambda: [200], description="statuses that count as healthy")
    json_: dict[str, Any] = Field(default_factory=dict, alias="json",
                                  description='dotted paths in the JSON body and their expected values, e.g. '
                                              '{"checks.database": "healthy"}')
    body_contains: str | None = None
    within: Duration = Field(default=timedelta(minutes=3), description="the deadline for becoming healthy")
    interval: Duration = Field(default=timedelta(seconds=15), description="pause between checks")
    check_timeout: Duration = Field(default=timedelta(seconds=10), description="one check's time limit")
    successes: int = Field(default=1, ge=1, description="consecutive healthy checks needed")
    inconclusive: Literal["fail", "pass"] = Field(default="fail", description="when no check ever got an answer")

    @model_validator(mode="after")
    def _one_target(self) -> VerifyParams:
        if (self.url is None) == (self.probe is None):
            raise ValueError("give exactly one of `url` or `probe`")
        return self

    def minimum_step_time(self) -> float:
        """The runner's step timeout must leave room for the whole verification."""
        return (self.within + self.check_timeout + self.interval).total_seconds() + 5

    def planned(self) -> PlannedCall:
        if self.probe:
            return PlannedCall("PROBE", self.probe, note=f"until healthy, within {format_duration(self.within)}")
        return PlannedCall(self.method, self.url or "", headers=self.headers,
                           note=f"until healthy, within {format_duration(self.within)}")


async def _http_check(http: aiohttp.ClientSession, params: VerifyParams) -> CheckOutcome:
    """The same HTTP check as an `http` probe's (status, JSON paths, body), run once."""
    check = HttpCheck.model_validate({"url": params.url, "method": params.method, "headers": params.headers,
                                      "expect": {"status": params.status, "json": params.json_,
                                                 "body_contains": params.body_contains}})
    result = await http_check(check, http, params.check_timeout.total_seconds())
    return CheckOutcome(result.ok, result.reason, result.value, result.answered)


async def _check(deps: ProviderDeps, params: VerifyParams) -> CheckOutcome:
    if params.probe is None:
        return await _http_check(deps.http, params)
    if deps.probes is None:
        raise PermanentActionError(f"verify: probes are not available to check {params.probe!r}")
    if not deps.probes.has_probe(params.probe):  # undefined or disabled: waiting would not change that
        outcome = await deps.probes.check(params.probe)
        raise PermanentActionError(f"verify inconclusive: {outcome.reason}")
    return await deps.probes.check(params.probe)


async def run_verify(deps: ProviderDeps, params: VerifyParams) -> ActionResult:
    clock = deps.clock
    deadline = clock.now() + params.within
    target = params.probe or params.url
    checks = passes = 0
    answered = False
    last = CheckOutcome(False, "not checked")
    while True:
        last = await _check(deps, params)
        checks += 1
        answered = answered or last.answered
        if last.healthy:
            passes += 1
            if passes >= params.successes:
                return ActionResult(f"{target} healthy after {checks} check(s): {last.reason}",
                                    {"outcome": "success", "checks": checks, "value": last.value})
        else:
            passes = 0
        if clock.now() + params.interval > deadline:
            break
        await clock.sleep(params.interval.total_seconds())
    within = format_duration(params.within)
    if not answered:
        if params.inconclusive == "pass":
            return ActionResult(f"{target}: inconclusive (no answer in {within}), treated as passed",
                                {"outcome": "inconclusive", "checks": checks})
        raise PermanentActionError(f"verify inconclusive: {target} never answered in {within} ({checks} checks): "
                                   f"{last.reason}")
    raise PermanentActionError(f"verify failed: {target} still unhealthy after {within} ({checks} checks): "
                               f"{last.reason}")
