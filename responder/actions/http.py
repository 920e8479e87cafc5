"""`http.request`: call any HTTP endpoint (a deploy hook, an internal admin API, a webhook)."""

from __future__ import annotations

import json
from typing import Any, Literal

import aiohttp
from pydantic import Field

from responder.actions.base import ActionProvider, ActionResult, PlannedCall, StepContext, classify_http
from responder.config.base import StrictModel
from responder.errors import PermanentActionError, RetryableActionError

__all__ = ["HttpProvider", "HttpRequestParams"]


class HttpRequestParams(StrictModel):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "POST"
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    json_: Any = Field(default=None, alias="json")
    body: str | None = None
    expect: list[int] = Field(default_factory=list, description="accepted statuses; default: any 2xx")


class HttpProvider(ActionProvider):
    name = "http"
    actions = {"request": HttpRequestParams}

    @staticmethod
    def _headers(params: HttpRequestParams, ctx: StepContext) -> dict[str, str]:
        return {"X-Responder-Incident": ctx.incident.id, "Idempotency-Key": ctx.idempotency_key, **params.headers}

    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        assert isinstance(params, HttpRequestParams)
        body = params.json_ if params.json_ is not None else params.body
        return [PlannedCall(params.method, params.url, body, self._headers(params, ctx))]

    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        assert isinstance(params, HttpRequestParams)
        headers = self._headers(params, ctx)
        try:
            async with self.deps.http.request(params.method, params.url, headers=headers, json=params.json_,
                                              data=params.body) as response:
                text = await response.text(errors="replace")
                if params.expect:
                    if response.status not in params.expect:
                        classify_http(response.status if response.status >= 300 else 400, text,
                                      response.headers.get("Retry-After"))
                else:
                    classify_http(response.status, text, response.headers.get("Retry-After"))
                output: dict[str, Any] = {"status": response.status, "body": text[:2000]}
                try:
                    output["json"] = json.loads(text) if text else None
                except ValueError:
                    output["json"] = None
                return ActionResult(f"{params.method} {params.url} -> {response.status}", output)
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise RetryableActionError(f"{params.method} {params.url}: {exc.__class__.__name__}: {exc}") from None
        except aiohttp.InvalidURL as exc:
            raise PermanentActionError(f"invalid URL: {exc}") from None
