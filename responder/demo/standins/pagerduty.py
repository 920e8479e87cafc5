"""PagerDutyStandIn: PagerDuty's Events API v2: POST /v2/enqueue (alerts) and POST /v2/change/enqueue (change events).

TLS by default, because the `pagerduty` client only accepts an https base URL; write `ca.cert_pem` to a
PEM file and give it to the provider as `ca_file`.

Shapes follow PagerDuty's documentation (developer-docs events-API-v2): 202
`{"status": "success", "message": "Event processed", "dedup_key": ...}`; 400
`{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}` for a malformed event
and for an unknown routing key (the routing key in the body is the credential). Alerts are kept by
dedup key with their state, following the documented de-duplication rules: a trigger without a key gets
a generated one; a trigger for a resolved key opens a new alert; acknowledge/resolve of an unknown or
resolved key are dropped (still 202).

    async with PagerDutyStandIn(routing_key="R0ut1ng...") as pagerduty:
        ...
        assert pagerduty.alerts["api-error-rate|service=api"].status == "triggered"

The test suite's PagerDutyFake is this class plus fault injection (tests/fakes/pagerduty.py).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from responder.demo.standins.base import StandIn

__all__ = ["Alert", "PagerDutyStandIn"]

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_BYTES = 512 * 1024


@dataclass
class Alert:
    dedup_key: str
    status: str  # triggered | acknowledged | resolved
    payload: dict[str, Any]
    links: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    client: str | None = None
    client_url: str | None = None
    #: every event action applied to this alert, in order
    log: list[str] = field(default_factory=list)


def _invalid(*errors: str, status: str = "invalid event") -> web.Response:
    return web.json_response({"status": status, "message": "Event object is invalid", "errors": list(errors)},
                             status=400)


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


class PagerDutyStandIn(StandIn):
    name = "pagerduty"

    def __init__(self, *, routing_key: str, tls: bool = True) -> None:
        super().__init__(token=routing_key, tls=tls)
        self.alerts: dict[str, Alert] = {}
        #: alerts replaced by a later trigger of the same (resolved) dedup key
        self.closed_alerts: list[Alert] = []
        self.change_events: list[dict[str, Any]] = []
        #: every accepted alert event, as received (routing key included)
        self.events: list[dict[str, Any]] = []

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v2/enqueue", self._enqueue)
        router.add_post("/v2/change/enqueue", self._change)

    # -- auth: the routing key in the body ----------------------------------------------------------
    def authorized(self, request: web.Request) -> bool:
        last = self.requests[-1] if self.requests else None
        body = last.json if last is not None and last.path == request.path else None
        if not isinstance(body, dict) or _blank(body.get("routing_key")):
            return True  # malformed: the handler answers with the validation error
        return bool(body["routing_key"] == self.token)

    def unauthorized(self) -> web.Response:
        return _invalid("Invalid routing key")

    # -- handlers --------------------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        raw = await request.read()
        if len(raw) > MAX_BYTES:
            return _invalid("Event object is too large (limit 512 KB)")
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"status": "invalid request", "message": "Invalid JSON",
                                      "errors": ["Request body is not valid JSON"]}, status=400)
        if not isinstance(body, dict):
            return _invalid("Event object must be a JSON object")
        if _blank(body.get("routing_key")):
            return _invalid("'routing_key' is missing or blank")
        return body

    async def _enqueue(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        errors = self._validate(body)
        if errors:
            return _invalid(*errors)
        self.events.append(body)
        action = body["event_action"]
        dedup = body.get("dedup_key") or uuid.uuid4().hex
        alert = self.alerts.get(dedup)
        if action == "trigger":
            if alert is None or alert.status == "resolved":
                if alert is not None:
                    self.closed_alerts.append(alert)
                alert = Alert(dedup, "triggered", body["payload"], body.get("links") or [], body.get("images") or [],
                              body.get("client"), body.get("client_url"))
                self.alerts[dedup] = alert
            else:  # a new trigger log entry on the open alert; an acknowledged alert stays acknowledged
                alert.payload = body["payload"]
            alert.log.append("trigger")
        elif alert is not None and alert.status != "resolved":
            alert.status = "acknowledged" if action == "acknowledge" else "resolved"
            alert.log.append(action)
        # acknowledge/resolve of an unknown or resolved key: dropped, still accepted
        return web.json_response({"status": "success", "message": "Event processed", "dedup_key": dedup},
                                 status=202)

    @staticmethod
    def _validate(body: dict[str, Any]) -> list[str]:
        errors: list[str] = []
        action = body.get("event_action")
        if action not in ACTIONS:
            errors.append("'event_action' is missing or invalid (must be one of the following: "
                          "'trigger', 'acknowledge' or 'resolve')")
        dedup = body.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and _blank(dedup):
            errors.append("'dedup_key' is missing or blank")
        for name in ("links", "images"):
            if name in body and not isinstance(body[name], list):
                errors.append(f"'{name}' must be an array")
        for link in body.get("links") or []:
            if not isinstance(link, dict) or _blank(link.get("href")):
                errors.append("'links[].href' is missing or blank")
        if action == "trigger":
            errors += PagerDutyStandIn._validate_payload(body.get("payload"))
        return errors

    @staticmethod
    def _validate_payload(payload: Any) -> list[str]:
        if not isinstance(payload, dict):
            return ["'payload' is missing or not an object"]
        errors: list[str] = []
        summary = payload.get("summary")
        if _blank(summary):
            errors.append("'payload.summary' is missing or blank")
        elif len(str(summary)) > 1024:
            errors.append("'payload.summary' must be at most 1024 characters")
        if _blank(payload.get("source")):
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in SEVERITIES:
            errors.append("'payload.severity' is missing or invalid (must be one of the following: "
                          "'critical', 'warning', 'error' or 'info')")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict | str):
            errors.append("'payload.custom_details' must be an object")
        return errors

    async def _change(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        payload = body.get("payload")
        errors: list[str] = []
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
        elif _blank(payload.get("summary")):
            errors.append("'payload.summary' is missing or blank")
        elif len(payload["summary"]) > 1024:
            errors.append("'payload.summary' must be at most 1024 characters")
        if "links" in body and not isinstance(body["links"], list):
            errors.append("'links' must be an array")
        if errors:
            return _invalid(*errors)
        self.change_events.append(body)
        return web.json_response({"status": "success", "message": "Change event processed"}, status=202)
