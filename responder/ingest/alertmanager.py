"""Prometheus Alertmanager `webhook_config` (payload version "4"): one Event per alert.

Alertmanager signs nothing; `http_config` can send a bearer token or HTTP basic auth, which
`AlertmanagerConfig` checks. Grafana's webhook body is a superset of this one, so the
per-alert normalization (`parse_alerts`) and the Authorization check (`check_http_auth`) live
here and `grafana.py` reuses them.

Normalization of one alert (`alerts.N`):
- name: `labels.alertname` (required); service: `labels.service`, else `job`, else `app`;
  severity: `labels.severity`; labels/annotations: the alert's own maps, values as strings.
- value: Grafana's `values` map (a single entry, else refId "A", else the first entry; null is
  None), else an annotation `value` that parses as a finite float, else None.
- occurred_at: `startsAt` while firing, `endsAt` once resolved (Go's zero time -> received_at).
- fingerprint: all alert labels; delivery_id: `<source>:<vendor fingerprint>:<startsAt>:<status>`
  (Grafana and Alertmanager re-send the same alert at every group flush: this dedupes it).
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any, ClassVar, Self

from pydantic import Field, SecretStr, model_validator

from responder.config.base import StrictModel
from responder.errors import PayloadError, SignatureError
from responder.events import Event, EventStatus, Severity, fingerprint
from responder.ingest.base import (
    IngestAdapter,
    IngestRequest,
    constant_time_equal,
    dig,
    get_field,
    load_json,
    parse_time,
)

__all__ = [
    "AlertmanagerAdapter",
    "AlertmanagerConfig",
    "BasicAuth",
    "HttpAuthConfig",
    "check_http_auth",
    "parse_alerts",
]


class BasicAuth(StrictModel):
    """HTTP basic auth credentials the sender must present."""

    username: str = Field(description="expected user name")
    password: SecretStr = Field(description="expected password")


class HttpAuthConfig(StrictModel):
    """The Authorization header a sender's HTTP client config can add (at most one scheme)."""

    bearer_token: SecretStr | None = Field(
        default=None, description="require `Authorization: Bearer <token>` on every delivery"
    )
    basic_auth: BasicAuth | None = Field(default=None, description="require HTTP basic auth with these credentials")

    @model_validator(mode="after")
    def _one_authorization_scheme(self) -> Self:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("set bearer_token or basic_auth, not both: a request carries one Authorization header")
        return self


def check_http_auth(request: IngestRequest, config: HttpAuthConfig) -> None:
    """Raise SignatureError unless the Authorization header matches the configured scheme."""
    if config.bearer_token is None and config.basic_auth is None:
        return
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise SignatureError("missing Authorization header", field="Authorization")
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if config.bearer_token is not None:
        ok = scheme.lower() == "bearer" and constant_time_equal(credentials, config.bearer_token.get_secret_value())
    else:
        assert config.basic_auth is not None
        ok = scheme.lower() == "basic" and _basic_matches(credentials, config.basic_auth)
    if not ok:
        raise SignatureError("invalid credentials in Authorization header", field="Authorization")


def _basic_matches(credentials: str, expected: BasicAuth) -> bool:
    try:
        user, sep, password = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user_ok = constant_time_equal(user, expected.username)
    password_ok = constant_time_equal(password, expected.password.get_secret_value())
    return bool(sep) and user_ok and password_ok


def parse_alerts(payload: Any, source: str, request: IngestRequest) -> list[Event]:
    """One Event per entry of `alerts` (Alertmanager v4 and Grafana share this shape)."""
    if not isinstance(payload, dict):
        raise PayloadError("body must be a JSON object", field="body", status=422)
    alerts = dig(payload, "alerts", kind=list)
    return [_alert_event(alert, f"alerts.{i}", source, request) for i, alert in enumerate(alerts)]


def _alert_event(alert: Any, path: str, source: str, request: IngestRequest) -> Event:
    """One entry of `alerts` (`path` names it in errors), read one level at a time."""
    if alert is None:
        raise PayloadError(f"required field {path!r} is null", field=path, status=422)
    if not isinstance(alert, dict):
        raise PayloadError(f"field {path!r} must be of type dict", field=path, status=422)
    status_raw = get_field(alert, "status", f"{path}.status", kind=str).strip().lower()
    if status_raw not in ("firing", "resolved"):
        raise PayloadError(f"field '{path}.status' must be firing or resolved", field=f"{path}.status", status=422)
    status = EventStatus(status_raw)
    raw_labels = get_field(alert, "labels", f"{path}.labels", kind=dict)
    labels = _string_map(raw_labels)
    name = get_field(raw_labels, "alertname", f"{path}.labels.alertname", kind=str).strip()
    if not name:
        raise PayloadError(f"field '{path}.labels.alertname' is empty", field=f"{path}.labels.alertname", status=422)
    annotations = _string_map(get_field(alert, "annotations", f"{path}.annotations", required=False, kind=dict) or {})
    starts_raw = get_field(alert, "startsAt", f"{path}.startsAt", kind=str)
    starts_at = parse_time(starts_raw, f"{path}.startsAt", request.received_at)
    occurred_at = starts_at
    if status is EventStatus.RESOLVED:
        ends_raw = get_field(alert, "endsAt", f"{path}.endsAt", required=False, kind=str)
        occurred_at = parse_time(ends_raw, f"{path}.endsAt", request.received_at)
    series = fingerprint(source, name, labels)
    vendor_fp = alert.get("fingerprint")
    key = vendor_fp if isinstance(vendor_fp, str) and vendor_fp else series
    url = alert.get("generatorURL")
    summary = annotations.get("summary") or annotations.get("description") or f"{name} is {status.value}"
    return Event(
        source=source,
        name=name,
        service=labels.get("service") or labels.get("job") or labels.get("app") or None,
        status=status,
        severity=Severity.parse(labels.get("severity")),
        value=_grafana_value(alert.get("values")) if alert.get("values") else _float(annotations.get("value")),
        summary=summary,
        url=url if isinstance(url, str) and url else None,
        labels=labels,
        annotations=annotations,
        fingerprint=series,
        occurred_at=occurred_at,
        received_at=request.received_at,
        delivery_id=f"{source}:{key}:{starts_raw}:{status.value}",
    )


def _grafana_value(values: Any) -> float | None:
    """Grafana's `values` (refId -> number): the only entry, else refId "A", else the first."""
    if not isinstance(values, dict) or not values:
        return None
    if len(values) == 1:
        return _float(next(iter(values.values())))
    return _float(values["A"] if "A" in values else next(iter(values.values())))


def _float(raw: Any) -> float | None:
    if raw is None or isinstance(raw, bool):
        return None
    try:
        number = float(raw)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _string_map(raw: dict[str, Any]) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else str(v) for k, v in raw.items() if v is not None}


class AlertmanagerConfig(HttpAuthConfig):
    """`ingest.alertmanager`: optional bearer or basic credentials from `http_config`."""


class AlertmanagerAdapter(IngestAdapter):
    """Alertmanager webhook v4: verify the optional Authorization header, one Event per alert."""

    source: ClassVar[str] = "alertmanager"
    Config: ClassVar[type[StrictModel]] = AlertmanagerConfig
    config: AlertmanagerConfig

    @property
    def verifies(self) -> bool:
        return self.config.bearer_token is not None or self.config.basic_auth is not None

    def verify(self, request: IngestRequest) -> None:
        check_http_auth(request, self.config)

    def parse(self, request: IngestRequest) -> list[Event]:
        payload = load_json(request.body)
        if isinstance(payload, dict):
            version = dig(payload, "version", kind=str)
            if version != "4":
                raise PayloadError(
                    f'unsupported webhook version {version!r}: expected Alertmanager\'s "4"'
                    " (Grafana contact points post to /hooks/grafana)",
                    field="version",
                    status=422,
                )
        return parse_alerts(payload, self.source, request)
