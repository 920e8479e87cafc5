"""The conformance table every provider test runs against its vendor fake.

    @pytest.mark.parametrize("check", CHECKS)
    async def test_conformance(case: Case, check: str, caplog: pytest.LogCaptureFixture) -> None:
        await conformance(check, case, caplog)

Checks (one step attempt is `call_once`, exactly as the runner makes it; only the runner retries):
- ok            2xx: the step succeeds; `case.expect_ok` asserts what the fake received
- rate_limited  429 + Retry-After: retryable carrying retry_after (or retried by the vendor SDK's own
                rate-limit handler, for slack-sdk), and the next attempt succeeds
- server_error  500 on every attempt: each attempt is retryable and says HTTP 500
- unauthorized  401: permanent, says the credentials were refused and where to fix them
- forbidden     403: the same
- timeout       the fake stalls: retryable "timed out"
- secret_echo   a 4xx whose body echoes the secret: permanent, and the secret is not in the message
Across all of them: no secret in any error, result, structlog event or stdlib log record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from responder.actions.base import ActionProvider, ActionResult, StepContext, call_once
from responder.config.base import StrictModel
from responder.errors import ActionError, PermanentActionError, RetryableActionError
from tests.fakes.vendor import FakeVendor

__all__ = ["CHECKS", "Case", "conformance"]

CHECKS = ("ok", "rate_limited", "server_error", "unauthorized", "forbidden", "timeout", "secret_echo")


@dataclass
class Case:
    fake: FakeVendor
    provider: ActionProvider
    verb: str
    params: StrictModel
    ctx: StepContext
    #: assertions on a successful call: the result and what the fake received
    expect_ok: Callable[[ActionResult, FakeVendor], None] = lambda result, fake: None
    #: the vendor SDK retries a 429 by itself (slack-sdk's AsyncRateLimitErrorRetryHandler)
    client_retries_429: bool = False
    #: how long the fake stalls in the timeout check; the provider's own timeout must be shorter
    stall: float = 3.0
    step_timeout: float = 10.0
    secrets: list[str] = field(default_factory=list)

    def all_secrets(self) -> list[str]:
        return [s for s in {*self.secrets, *self.provider.secrets()} if s]


async def _attempt(case: Case) -> ActionResult:
    return await call_once(case.provider, case.verb, case.params, case.ctx, case.step_timeout)


def _no_secret(case: Case, *texts: Any) -> None:
    for secret in case.all_secrets():
        for text in texts:
            assert secret not in str(text), f"secret leaked into {str(text)[:300]!r}"


async def _expect(case: Case, error: type[ActionError]) -> ActionError:
    with pytest.raises(error) as info:
        await _attempt(case)
    _no_secret(case, info.value, info.value.args)
    return info.value


async def conformance(check: str, case: Case, caplog: pytest.LogCaptureFixture) -> None:
    assert check in CHECKS
    assert case.all_secrets(), "a conformance case must carry the provider's secrets"
    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        await _run(check, case)
    _no_secret(case, events, [r.getMessage() for r in caplog.records], [r.args for r in caplog.records])


async def _ok(case: Case) -> ActionResult:
    result = await _attempt(case)
    _no_secret(case, result.summary, result.output)
    assert result.summary
    return result


async def _run(check: str, case: Case) -> None:
    fake = case.fake
    if check == "ok":
        result = await _ok(case)
        assert fake.requests, "the provider did not call its vendor"
        case.expect_ok(result, fake)
    elif check == "rate_limited":
        fake.fail_next(429, headers={"Retry-After": "1"})
        if case.client_retries_429:
            await _ok(case)
            assert sum(1 for r in fake.requests) >= 2, "the 429 was not retried"
        else:
            error = await _expect(case, RetryableActionError)
            assert error.retry_after == 1.0, f"Retry-After not honoured: {error.retry_after}"
            await _ok(case)
    elif check == "server_error":
        fake.fail_next(500, times=30)
        for _ in range(3):
            error = await _expect(case, RetryableActionError)
            assert "500" in str(error), str(error)
        fake.clear_faults()
        await _ok(case)
    elif check in ("unauthorized", "forbidden"):
        status = 401 if check == "unauthorized" else 403
        fake.fail_next(status, body='{"error": "invalid token"}', times=5)
        error = await _expect(case, PermanentActionError)
        message = str(error).lower()
        assert str(status) in message and ("credential" in message or "token" in message or "auth" in message), \
            str(error)
    elif check == "timeout":
        fake.stall_next(case.stall)
        error = await _expect(case, RetryableActionError)
        assert "timed out" in str(error) or "timeout" in str(error).lower(), str(error)
    elif check == "secret_echo":
        secret = case.all_secrets()[0]
        fake.fail_next(400, body=f'{{"error": "invalid request for token {secret}", "message": "{secret}"}}',
                       times=5)
        await _expect(case, PermanentActionError)
