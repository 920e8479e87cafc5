"""UptimeRobot webhook alert contacts: one Event per delivery, in any of its three encodings.

UptimeRobot substitutes `*variable*` placeholders into a JSON template, POSTs them as form
parameters, or appends them to the URL as a query string (the legacy GET web-hook). A body
is parsed by its content type; an empty body (GET or POST) falls back to the query string.
Placeholders left literally (`*sslExpiryDate*`) and blank values count as missing.

UptimeRobot signs nothing. With `token` set, one of these must carry it: the URL path
(`/hooks/uptimerobot/<token>`), the `token` query parameter, the `X-Responder-Token` header or
`Authorization: Bearer <token>` (custom headers need the newer Webhook Integration).

alertType: 1 (down) -> firing, severity critical; 2 (up) -> resolved, value = alertDuration
seconds; 3 (SSL certificate expiry) -> firing, severity warning, value = sslExpiryDaysLeft, and
named "<monitor> SSL expiry" so it is its own series: an expiring certificate is not a down
monitor, and an "up" alert must not resolve it. The `service` query parameter (add
`?service=api` to the alert contact URL) names the service; otherwise the monitor's name does.
delivery_id is `uptimerobot:<monitorID>:<alertType>:<alertDateTime>`; without alertDateTime it
falls back to the receive time (a retry may then count twice, but no alert is ever dropped).
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar
from urllib.parse import parse_qs

from pydantic import Field, SecretStr

from responder.config.base import StrictModel
from responder.errors import PayloadError, SignatureError
from responder.events import Event, EventStatus, Severity, fingerprint
from responder.ingest.base import IngestAdapter, IngestRequest, constant_time_equal, load_json, parse_time

__all__ = ["TOKEN_HEADER", "UptimeRobotAdapter", "UptimeRobotConfig"]

TOKEN_HEADER = "X-Responder-Token"
FORM = "application/x-www-form-urlencoded"
_PLACEHOLDER = re.compile(r"^\*[A-Za-z]+\*$")
_ALERT_TYPES = {
    "1": ("down", EventStatus.FIRING, Severity.CRITICAL),
    "2": ("up", EventStatus.RESOLVED, None),
    "3": ("ssl_expiry", EventStatus.FIRING, Severity.WARNING),
}


class UptimeRobotConfig(StrictModel):
    """`ingest.uptimerobot`: the shared token the alert contact URL or headers carry."""

    token: SecretStr | None = Field(
        default=None,
        description="required in the URL path, the `token` query parameter, X-Responder-Token or a Bearer header; "
        "unset accepts unauthenticated deliveries",
    )


def _present(raw: Any) -> str | None:
    """A substituted value as text; None for absent, blank or left-literal `*placeholder*` values."""
    if raw is None or isinstance(raw, bool | dict | list):
        return None
    text = str(raw).strip()
    return None if not text or _PLACEHOLDER.match(text) else text


def _number(raw: str | None) -> float | None:
    try:
        number = float(raw) if raw is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class UptimeRobotAdapter(IngestAdapter):
    """UptimeRobot web-hook alert contact (JSON, form or query string)."""

    source: ClassVar[str] = "uptimerobot"
    Config: ClassVar[type[StrictModel]] = UptimeRobotConfig
    content_types: ClassVar[tuple[str, ...]] = ("application/json", FORM)
    accepts_get: ClassVar[bool] = True
    config: UptimeRobotConfig

    @property
    def verifies(self) -> bool:
        return self.config.token is not None

    def verify(self, request: IngestRequest) -> None:
        if self.config.token is None:
            return
        scheme, _, bearer = request.headers.get("Authorization", "").strip().partition(" ")
        candidates = (
            request.path_token,
            request.query.get("token"),
            request.headers.get(TOKEN_HEADER),
            bearer if scheme.lower() == "bearer" else None,
        )
        presented = [c.strip() for c in candidates if c and c.strip()]
        if not presented:
            raise SignatureError(
                f"missing token: put it in the URL path, the token query parameter, {TOKEN_HEADER} "
                "or an Authorization: Bearer header",
                field="token",
            )
        expected = self.config.token.get_secret_value()
        if not any([constant_time_equal(candidate, expected) for candidate in presented]):  # all compared
            raise SignatureError("invalid token", field="token")

    def parse(self, request: IngestRequest) -> list[Event]:
        fields = self._fields(request)
        monitor_id = _present(fields.get("monitorID"))
        if monitor_id is None:
            raise PayloadError("missing required field 'monitorID'", field="monitorID", status=422)
        alert_type = _present(fields.get("alertType"))
        if alert_type not in _ALERT_TYPES:
            raise PayloadError(
                "field 'alertType' must be 1 (down), 2 (up) or 3 (SSL expiry)", field="alertType", status=422
            )
        kind, status, severity = _ALERT_TYPES[alert_type]
        monitor = _present(fields.get("monitorFriendlyName")) or _present(fields.get("monitorURL")) or monitor_id
        name = f"{monitor} SSL expiry" if kind == "ssl_expiry" else monitor
        details = _present(fields.get("alertDetails"))
        duration = _present(fields.get("alertDuration"))
        days_left = _present(fields.get("sslExpiryDaysLeft"))
        expiry = _present(fields.get("sslExpiryDate"))
        when = _present(fields.get("alertDateTime"))
        if kind == "down":
            summary, value = f"{monitor} is down" + (f": {details}" if details else ""), None
        elif kind == "up":
            took = _present(fields.get("alertFriendlyDuration")) or (f"{duration}s" if duration else None)
            summary, value = f"{monitor} is up again" + (f" after {took}" if took else ""), _number(duration)
        else:
            summary = f"{monitor}: SSL certificate expires" + (f" {expiry}" if expiry else "")
            summary += f" ({days_left} days left)" if days_left else ""
            value = _number(days_left)
        labels = {"monitor_id": monitor_id, "alert_type": kind}
        if monitor_url := _present(fields.get("monitorURL")):
            labels["monitor_url"] = monitor_url
        notes = (("alert_details", details), ("ssl_expiry_date", expiry), ("ssl_expiry_days_left", days_left))
        annotations = {key: text for key, text in notes if text is not None}
        return [
            Event(
                source=self.source,
                name=name,
                service=_present(request.query.get("service")) or monitor,
                status=status,
                severity=severity,
                value=value,
                summary=summary,
                labels=labels,
                annotations=annotations,
                fingerprint=fingerprint(self.source, name, {"monitor_id": monitor_id}),
                occurred_at=parse_time(when, "alertDateTime", request.received_at),
                received_at=request.received_at,
                delivery_id=f"uptimerobot:{monitor_id}:{alert_type}:{when or request.received_at.isoformat()}",
            )
        ]

    def _fields(self, request: IngestRequest) -> dict[str, Any]:
        """The delivery's variables from the JSON body, the form body, or (empty body) the query string."""
        if not request.body.strip():
            return dict(request.query)
        content_type = request.content_type.split(";")[0].strip().lower()
        if content_type == FORM:
            try:
                text = request.body.decode()
            except UnicodeDecodeError:
                raise PayloadError("form body is not valid UTF-8", field="body") from None
            return {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}
        if content_type == "application/json" or content_type.endswith("+json"):
            payload = load_json(request.body)
            if not isinstance(payload, dict):
                raise PayloadError("body must be a JSON object", field="body", status=422)
            return payload
        raise PayloadError(f"unsupported content type {content_type!r}", field="Content-Type", status=415)
