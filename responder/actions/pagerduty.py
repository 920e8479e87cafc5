"""`pagerduty.*`: page, acknowledge and resolve through the Events API v2, and send change events.

The calls go through PagerDuty's maintained client, `pagerduty.EventsApiV2Client` (synchronous,
httpx2), run in a worker thread; one client is built per provider. A step is ONE request: the
client's own retry loops are switched off (429 stops in `postprocess`, the 5xx retry table is
emptied, `max_network_attempts = 0`), because its back-off sleeps a thread, ignores Retry-After
and hides attempts from the timeline. The runner retries instead, honouring Retry-After.

- `dedup_key` defaults to the responder incident's key (one PagerDuty alert per incident key); the
  key a trigger used is kept in ProviderState so acknowledge/resolve address the same alert.
- The routing key is sent in the body (that is how the Events API authenticates); it never appears
  in a plan, a summary, an output or an error message.
- The Events API answers 400 for an unknown routing key; 401/403 (proxies, or the conformance
  table) are credential errors too. 429 and 5xx are retryable, network errors and timeouts too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pagerduty
from pydantic import Field, SecretStr, field_validator

from responder.actions.base import (
    ActionProvider,
    ActionResult,
    PlannedCall,
    ProviderDeps,
    StepContext,
    VendorConfig,
    classify_http,
)
from responder.config.base import StrictModel
from responder.errors import ActionError, PermanentActionError, RetryableActionError
from responder.events import Severity
from responder.logs import redact_text

__all__ = [
    "PagerDutyAlertParams",
    "PagerDutyChangeParams",
    "PagerDutyConfig",
    "PagerDutyLink",
    "PagerDutyProvider",
    "PagerDutyTriggerParams",
]

DEFAULT_BASE_URL = "https://events.pagerduty.com"
SUMMARY_LIMIT = 1024  # payload.summary, characters
DEDUP_LIMIT = 255  # dedup_key, characters
PD_SEVERITY = {Severity.CRITICAL: "critical", Severity.ERROR: "error", Severity.WARNING: "warning",
               Severity.INFO: "info"}
T = TypeVar("T")


class PagerDutyConfig(VendorConfig):
    routing_key: SecretStr | None = Field(default=None, description="Events API v2 integration key")
    api_key: SecretStr | None = Field(default=None, description="REST API key (optional)")
    base_url: str = Field(default=DEFAULT_BASE_URL, pattern=r"^https://",
                          description="Events API URL (https only; e.g. https://events.eu.pagerduty.com)")
    ca_file: str | None = Field(default=None, description="PEM file of CA certificates to trust for base_url "
                                                          "(a private CA, tests); default: the system store")

    @field_validator("ca_file")
    @classmethod
    def _ca_file_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"ca_file {value!r} is not a readable file")
        return value

    def has_credentials(self) -> bool:
        """Only the routing key lets the Events API accept an event."""
        return self.routing_key is not None and bool(self.routing_key.get_secret_value())


class PagerDutyLink(StrictModel):
    href: str = Field(pattern=r"^https?://", description="URL shown on the PagerDuty alert")
    text: str | None = Field(default=None, description="link text")


def _severity(value: str | None) -> str | None:
    if value is None:
        return None
    parsed = Severity.parse(value)
    if parsed is None:
        raise ValueError(f"unknown severity {value!r}: use critical, error, warning or info (or p1..p5, high, ...)")
    return PD_SEVERITY[parsed]


class PagerDutyTriggerParams(StrictModel):
    summary: str | None = Field(default=None, description="alert title (up to 1024 characters); "
                                                          "default: the incident title")
    severity: str | None = Field(default=None, description="critical, error, warning or info (aliases such as p1 "
                                                           "or high are mapped); default: the incident's severity")
    source: str | None = Field(default=None, description="affected system; default: the incident's service")
    dedup_key: str | None = Field(default=None, description="alert identity; default: the incident key")
    component: str | None = Field(default=None, description="payload.component, e.g. postgres")
    group: str | None = Field(default=None, description="payload.group, e.g. app-stack")
    class_: str | None = Field(default=None, alias="class", description="payload.class, e.g. latency")
    custom_details: dict[str, Any] = Field(default_factory=dict,
                                           description="extra details, merged over the incident's own")
    links: list[PagerDutyLink] = Field(default_factory=list,
                                       description="extra links (the incident and its source are always linked)")

    @field_validator("severity")
    @classmethod
    def _known_severity(cls, value: str | None) -> str | None:
        return _severity(value)


class PagerDutyAlertParams(StrictModel):
    dedup_key: str | None = Field(default=None, description="alert to change; default: the key the last "
                                                            "pagerduty.trigger of this incident used, else the "
                                                            "incident key")


class PagerDutyChangeParams(StrictModel):
    summary: str = Field(min_length=1, description="what changed, e.g. 'Rolled back api to deployment 3f2a'")
    source: str | None = Field(default=None, description="where it changed; default: the incident's service")
    custom_details: dict[str, Any] = Field(default_factory=dict,
                                           description="extra details, merged over the incident's own")
    links: list[PagerDutyLink] = Field(default_factory=list, description="extra links (the incident is linked)")


class _EventsClient(pagerduty.EventsApiV2Client):
    """The Events client with no 429 loop: its default is to retry 429 without limit."""

    def postprocess(self, response: httpx2.Response) -> None:
        if response.status_code == 429:
            raise pagerduty.HttpError("rate limited (HTTP 429)", response)


def dedup_key_for(key: str) -> str:
    """The incident key as a dedup key (a hash suffix keeps an over-long key unique within 255 chars)."""
    if len(key) <= DEDUP_LIMIT:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[:DEDUP_LIMIT - 17]}#{digest}"


class PagerDutyProvider(ActionProvider):
    name = "pagerduty"
    Config = PagerDutyConfig
    actions = {"trigger": PagerDutyTriggerParams, "acknowledge": PagerDutyAlertParams,
               "resolve": PagerDutyAlertParams, "change": PagerDutyChangeParams}

    def __init__(self, config: StrictModel | None, deps: ProviderDeps) -> None:
        super().__init__(config, deps)
        assert isinstance(config, PagerDutyConfig) and config.routing_key is not None
        self.base_url = config.base_url.rstrip("/")
        self.timeout = config.timeout.total_seconds()
        kwargs: dict[str, Any] = {}
        if config.ca_file:
            kwargs["verify"] = ssl.create_default_context(cafile=config.ca_file)
        client = _EventsClient(config.routing_key.get_secret_value(), base_url=self.base_url, **kwargs)
        client.retry = {429: 1}  # never reached (postprocess stops a 429); a cap should that hook ever go away
        client.max_http_attempts = 1
        client.max_network_attempts = 0  # a network error or timeout goes straight back to the runner
        client.timeout = self.timeout  # type: ignore[assignment]  # typed after its default (60); httpx2 takes floats
        self.client = client

    def close(self) -> None:
        """Close the client's connection pool (the daemon keeps it for its lifetime)."""
        self.client.close()

    async def aclose(self) -> None:
        self.close()

    # -- the events, as sent (routing key added by the client) -------------------------------------
    def _links(self, ctx: StepContext, extra: list[PagerDutyLink], *, source_link: bool) -> list[dict[str, str]]:
        incident = ctx.incident
        links: list[dict[str, str]] = []
        if ctx.incident_url:
            links.append({"href": ctx.incident_url, "text": f"Incident #{incident.id} in responder"})
        if source_link and incident.url:
            links.append({"href": incident.url, "text": f"{incident.source or 'Source'}: {incident.title}"[:200]})
        for link in extra:
            links.append({"href": link.href, **({"text": link.text} if link.text else {})})
        return links

    @staticmethod
    def _details(ctx: StepContext, extra: dict[str, Any]) -> dict[str, Any]:
        incident = ctx.incident
        details: dict[str, Any] = {"incident_id": incident.id, "state": incident.state.value,
                                   "severity": incident.severity.value, "rule": incident.rule_id}
        optional = {"service": incident.service, "value": incident.value, "source": incident.source,
                    "summary": incident.summary or None, "labels": incident.labels or None}
        details.update({k: v for k, v in optional.items() if v is not None})
        return {**details, **extra}

    def _trigger_event(self, params: PagerDutyTriggerParams, ctx: StepContext) -> tuple[str, dict[str, Any]]:
        incident = ctx.incident
        payload: dict[str, Any] = {
            "summary": (params.summary or incident.title)[:SUMMARY_LIMIT],
            "source": params.source or incident.service or incident.source or "responder",
            "severity": params.severity or PD_SEVERITY[incident.severity],
            "timestamp": self.deps.clock.now().isoformat(),
            "custom_details": self._details(ctx, params.custom_details),
        }
        for field, value in (("component", params.component), ("group", params.group), ("class", params.class_)):
            if value:
                payload[field] = value
        event: dict[str, Any] = {"payload": payload, "client": "responder"}
        links = self._links(ctx, params.links, source_link=True)
        if links:
            event["links"] = links
        if ctx.incident_url:
            event["client_url"] = ctx.incident_url
        return params.dedup_key or dedup_key_for(incident.key), event

    def _change_event(self, params: PagerDutyChangeParams, ctx: StepContext) -> dict[str, Any]:
        incident = ctx.incident
        event: dict[str, Any] = {"payload": {
            "summary": params.summary[:SUMMARY_LIMIT],
            "source": params.source or incident.service or "responder",
            "timestamp": self.deps.clock.now().isoformat(),  # passed explicitly: submit() of 7.2.0 cannot make one
            "custom_details": self._details(ctx, params.custom_details),
        }}
        links = self._links(ctx, params.links, source_link=False)
        if links:
            event["links"] = links
        return event

    # -- dry-run -----------------------------------------------------------------------------------
    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        headers = {"Content-Type": "application/json"}
        if isinstance(params, PagerDutyTriggerParams):
            dedup, event = self._trigger_event(params, ctx)
            body = {"routing_key": "***", "event_action": "trigger", "dedup_key": dedup, **event}
            return [PlannedCall("POST", f"{self.base_url}/v2/enqueue", body, headers)]
        if isinstance(params, PagerDutyAlertParams):
            dedup = params.dedup_key or dedup_key_for(ctx.incident.key)
            note = "" if params.dedup_key else "or the dedup_key an earlier pagerduty.trigger of this incident used"
            body = {"routing_key": "***", "event_action": verb, "dedup_key": dedup}
            return [PlannedCall("POST", f"{self.base_url}/v2/enqueue", body, headers, note)]
        assert isinstance(params, PagerDutyChangeParams)
        body = {"routing_key": "***", **self._change_event(params, ctx)}
        return [PlannedCall("POST", f"{self.base_url}/v2/change/enqueue", body, headers)]

    # -- run ---------------------------------------------------------------------------------------
    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        incident = ctx.incident
        if isinstance(params, PagerDutyTriggerParams):
            dedup, event = self._trigger_event(params, ctx)
            returned = await self._call("/v2/enqueue", self.client.send_event, "trigger", dedup_key=dedup, **event)
            dedup = returned or dedup
            await self.deps.state.set(incident.id, self.name, dedup_key=dedup, status="triggered")
            severity = event["payload"]["severity"]
            return ActionResult(f"paged PagerDuty ({severity}): {event['payload']['summary'][:120]} "
                                f"[dedup_key {dedup}]",
                                {"dedup_key": dedup, "severity": severity, "status": "triggered"})
        if isinstance(params, PagerDutyAlertParams):
            assert verb in ("acknowledge", "resolve")
            status = "acknowledged" if verb == "acknowledge" else "resolved"
            if params.dedup_key is None:  # ours: only what responder triggered, and only once (no echo)
                known = await self.deps.state.get(incident.id, self.name)
                if not known.get("dedup_key"):
                    return ActionResult(f"no PagerDuty alert was triggered for this incident: nothing to {verb}",
                                        {"status": "none"})
                if known.get("status") in (status, "resolved"):
                    return ActionResult(f"the PagerDuty alert {known['dedup_key']} is already {known['status']}: "
                                        "nothing sent", {"dedup_key": known["dedup_key"], "status": known["status"]})
            dedup = params.dedup_key or await self._remembered_key(incident.id) or dedup_key_for(incident.key)
            await self._call("/v2/enqueue", self.client.send_event, verb, dedup_key=dedup)
            await self.deps.state.set(incident.id, self.name, dedup_key=dedup, status=status)
            return ActionResult(f"{status} the PagerDuty alert {dedup}", {"dedup_key": dedup, "status": status})
        assert isinstance(params, PagerDutyChangeParams)
        event = self._change_event(params, ctx)
        await self._call("/v2/change/enqueue", self.client.send_change_event, payload=event["payload"],
                         links=event.get("links"))
        return ActionResult(f"sent a PagerDuty change event: {params.summary[:120]}",
                            {"summary": event["payload"]["summary"], "source": event["payload"]["source"]})

    async def _remembered_key(self, incident_id: str) -> str | None:
        return (await self.deps.state.get(incident_id, self.name)).get("dedup_key") or None

    async def _call(self, path: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One request in a worker thread; every failure becomes a classified, secret-free ActionError."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (pagerduty.Error, pagerduty.UrlError) as exc:
            raise self._classify(exc, path) from None

    def _clean(self, text: str) -> str:
        return redact_text(text, self.secrets())

    def _classify(self, exc: Exception, path: str) -> ActionError:
        what = f"pagerduty: POST {path}"
        response = exc.response if isinstance(exc, pagerduty.HttpError) else None
        if response is not None:
            return self._classify_response(what, response)
        if isinstance(exc, pagerduty.UrlError):
            return PermanentActionError(f"pagerduty: {self._clean(str(exc))} (providers.pagerduty.base_url)")
        cause = exc.__cause__
        if isinstance(cause, httpx2.TimeoutException):
            return RetryableActionError(f"{what} timed out after {self.timeout:g}s")
        if cause is not None and "CERTIFICATE_VERIFY_FAILED" in str(cause):
            return PermanentActionError(f"{what} failed: the server's TLS certificate is not trusted "
                                        "(providers.pagerduty.ca_file names the CA of a private endpoint)")
        if cause is not None:
            return RetryableActionError(f"{what} failed: {cause.__class__.__name__}: {self._clean(str(cause))}")
        return RetryableActionError(f"{what} failed: {self._clean(str(exc))}")

    def _classify_response(self, what: str, response: httpx2.Response) -> ActionError:
        status = response.status_code
        body = self._clean(response.text)
        if status in (401, 403):
            return PermanentActionError(f"{what}: HTTP {status}, the credentials were refused "
                                        "(check providers.pagerduty.routing_key in responder.yaml)")
        if 200 <= status < 300:  # accepted, but not the answer the client expects (no dedup_key)
            return PermanentActionError(f"{what}: unexpected response (HTTP {status}): {body[:200]}")
        if status == 400:
            reason = _event_errors(body)
            hint = ""
            if "routing" in reason.lower() or "integration key" in reason.lower():
                hint = "; the routing key was refused (check providers.pagerduty.routing_key in responder.yaml)"
            return PermanentActionError(f"{what}: HTTP 400, PagerDuty rejected the event: {reason}{hint}")
        try:
            classify_http(status, body, response.headers.get("Retry-After"))
        except ActionError as error:
            return type(error)(f"{what}: {error}", retry_after=error.retry_after)
        return PermanentActionError(f"{what}: HTTP {status}")  # pragma: no cover - classify_http raised above


def _event_errors(body: str) -> str:
    """`Event object is invalid: Invalid routing key` from the Events API's error shape, else the body."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].replace("\n", " ")
    if not isinstance(data, dict):
        return body[:200]
    message = str(data.get("message") or data.get("status") or "")
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        message = f"{message}: " + "; ".join(str(e) for e in errors) if message else "; ".join(map(str, errors))
    return (message or body)[:300]

