"""`http.request`: call any HTTP endpoint (a deploy hook, an internal admin API, a webhook).

Authentication headers come from secrets, never from the playbook text:

    providers:
      http:
        credentials:
          deploy-hook: {headers: {Authorization: "Bearer ${DEPLOY_HOOK_TOKEN}"}}

    - name: redeploy
      action: http.request
      with: {url: "https://deploy.internal/hooks/api", credentials: deploy-hook, json: {ref: previous}}

The credential's headers are added at send time: they are redacted from errors and logs and shown
as `***` in dry-run plans. Failures are classified like every vendor's (5xx/429/network retryable).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, SecretStr

from responder.actions.base import ActionProvider, ActionResult, PlannedCall, StepContext, VendorApi, VendorConfig
from responder.config.base import Duration, StrictModel
from responder.errors import PermanentActionError

__all__ = ["HttpConfig", "HttpCredential", "HttpProvider", "HttpRequestParams"]


class HttpCredential(StrictModel):
    headers: dict[str, SecretStr] = Field(description="headers added to the request, e.g. Authorization")


class HttpConfig(VendorConfig):
    timeout: Duration = Field(default=timedelta(seconds=30), description="per request")
    credentials: dict[str, HttpCredential] = Field(
        default_factory=dict, description="named sets of secret headers that http.request steps may use")

    def has_credentials(self) -> bool:
        return True  # plain HTTP needs none

    def secrets(self) -> list[str]:
        return [v.get_secret_value() for c in self.credentials.values() for v in c.headers.values()
                if v.get_secret_value()]


class HttpRequestParams(StrictModel):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "POST"
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict, description="plain headers (use credentials for secrets)")
    credentials: str | None = Field(default=None, description="name of an entry of providers.http.credentials")
    json_: Any = Field(default=None, alias="json")
    body: str | None = None
    expect: list[int] = Field(default_factory=list, description="accepted statuses; default: any 2xx")


class HttpProvider(ActionProvider):
    name = "http"
    Config = HttpConfig
    actions = {"request": HttpRequestParams}

    def __init__(self, config: StrictModel | None, deps: Any) -> None:
        super().__init__(config if config is not None else HttpConfig(), deps)

    @property
    def settings(self) -> HttpConfig:
        assert isinstance(self.config, HttpConfig)
        return self.config

    def _headers(self, params: HttpRequestParams, ctx: StepContext, *, reveal: bool) -> dict[str, str]:
        headers = {"X-Responder-Incident": ctx.incident.id, "Idempotency-Key": ctx.idempotency_key, **params.headers}
        if params.credentials is not None:
            credential = self.settings.credentials.get(params.credentials)
            if credential is None:
                known = ", ".join(sorted(self.settings.credentials)) or "none configured"
                raise PermanentActionError(f"http: no credentials named {params.credentials!r} in "
                                           f"providers.http.credentials (known: {known})")
            headers.update({k: v.get_secret_value() if reveal else "***" for k, v in credential.headers.items()})
        return headers

    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        assert isinstance(params, HttpRequestParams)
        body = params.json_ if params.json_ is not None else params.body
        return [PlannedCall(params.method, params.url, body, self._headers(params, ctx, reveal=False))]

    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        assert isinstance(params, HttpRequestParams)
        api = VendorApi("http", self.deps.http, "", headers=self._headers(params, ctx, reveal=True),
                        secrets=self.secrets(), timeout=self.settings.timeout)
        accepted = tuple(params.expect)
        response = await api.request(params.method, params.url, json_body=params.json_, data=params.body,
                                     ok=accepted)
        if accepted and response.status not in accepted:  # a 2xx that was not asked for
            raise PermanentActionError(f"http: {params.method} {params.url} answered {response.status}, expected "
                                       f"{', '.join(map(str, accepted))}")
        output: dict[str, Any] = {"status": response.status, "body": response.text[:2000]}
        try:
            output["json"] = json.loads(response.text) if response.text else None
        except ValueError:
            output["json"] = None
        return ActionResult(f"{params.method} {params.url} -> {response.status}", output)
