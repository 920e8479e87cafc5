"""http.request: the conformance table against a local endpoint, secret headers from providers.http.credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from responder.actions.base import ActionResult, ProviderDeps, StepContext, call_once
from responder.actions.http import HttpConfig, HttpProvider, HttpRequestParams
from responder.errors import PermanentActionError
from tests.actions.conformance import CHECKS, Case, conformance
from tests.fakes.vendor import FakeVendor

SECRET = "hook-t0ken-5ecret-9911"


class HookFake(FakeVendor):
    """A deploy hook that wants `Authorization: Bearer <token>` and answers JSON."""

    name = "hook"

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/hooks/api", self._hook)
        router.add_get("/created", self._created)

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"accepted": True, "ref": body.get("ref")})

    async def _created(self, request: web.Request) -> web.Response:
        return web.json_response({}, status=201)


@pytest.fixture
async def fake() -> AsyncIterator[HookFake]:
    async with HookFake(token=SECRET) as f:
        assert isinstance(f, HookFake)
        yield f


def make(deps: ProviderDeps) -> HttpProvider:
    credentials = {"deploy-hook": {"headers": {"Authorization": f"Bearer {SECRET}"}}}
    config = HttpConfig.model_validate({"timeout": "300ms", "credentials": credentials})
    return HttpProvider(config, deps)


@pytest.fixture
def case(fake: HookFake, deps: ProviderDeps, ctx: StepContext) -> Case:
    params = HttpRequestParams.model_validate({"url": f"{fake.url}/hooks/api", "credentials": "deploy-hook",
                                               "json": {"ref": "previous"}})

    def expect_ok(result: ActionResult, f: FakeVendor) -> None:
        assert result.output["json"] == {"accepted": True, "ref": "previous"}
        sent = f.calls("POST", "/hooks/api")[-1]
        assert sent.headers["Authorization"] == f"Bearer {SECRET}"
        assert sent.headers["Idempotency-Key"] == ctx.idempotency_key

    return Case(fake, make(deps), "request", params, ctx, expect_ok=expect_ok, stall=0.8)


@pytest.mark.parametrize("check", CHECKS)
async def test_conformance(check: str, case: Case, caplog: pytest.LogCaptureFixture) -> None:
    await conformance(check, case, caplog)


async def test_unknown_credentials_and_unexpected_status(fake: HookFake, deps: ProviderDeps,
                                                         ctx: StepContext) -> None:
    provider = make(deps)
    unknown = HttpRequestParams.model_validate({"url": f"{fake.url}/hooks/api", "credentials": "nope"})
    with pytest.raises(PermanentActionError, match=r"no credentials named 'nope'.*known: deploy-hook"):
        await call_once(provider, "request", unknown, ctx, 5)
    assert fake.requests == []
    strict = HttpRequestParams.model_validate({"url": f"{fake.url}/created", "method": "GET", "expect": [200],
                                               "credentials": "deploy-hook"})
    with pytest.raises(PermanentActionError, match="answered 201, expected 200"):
        await call_once(provider, "request", strict, ctx, 5)


def test_plan_masks_credential_headers(deps: ProviderDeps, ctx: StepContext) -> None:
    params = HttpRequestParams.model_validate({"url": "https://deploy.internal/hooks/api", "credentials": "deploy-hook",
                                               "json": {"ref": "previous"}})
    [call] = make(deps).plan("request", params, ctx)
    shown: dict[str, Any] = call.redacted([SECRET])
    assert shown["headers"]["Authorization"] == "***" and SECRET not in str(shown)
    assert shown["method"] == "POST" and shown["body"] == {"ref": "previous"}
