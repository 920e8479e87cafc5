"""Sentry webhooks: integration-platform resources (`Sentry-Hook-Resource`) and the legacy plugin.

Resources: `metric_alert` (one Event, firing on critical/warning, resolved on resolved),
`event_alert` (an issue alert rule fired: one firing Event), `issue` (created/unresolved fire,
resolved resolves, assigned/archived/anything else is INFO); `installation`, `comment`, `error`
and unknown resources are acknowledged with no events. A body without the header but with
`triggering_rules` is the legacy "WebHooks" plugin: one firing Event per triggering rule.

Signature: with `client_secret` set, `Sentry-Hook-Signature` must be the lowercase hex
HMAC-SHA256 of the raw body. The legacy plugin signs nothing, so it needs `client_secret` unset
(protect it with the secret path token instead). Sentry signs no timestamp (Sentry-Hook-Timestamp is not
covered by the signature), so no replay window can be enforced: a replayed delivery carries the same
delivery id and is recognised as a duplicate (tests/security/test_signatures.py).

Metric alert value: Sentry sends no number, only `description_text`, built by
`get_incident_status_text` as "<value><agg text> in the last <window>", e.g. "1520 events in the
last 5 minutes", "7.00% failure rate in the last 10 minutes" (current Sentry multiplies
failure_rate() by 100; older servers wrote "0.07 failure_rate() in ..."), "99.5% sessions crash
free rate in ...". The rule: the number that *starts* the first line of `description_text` is the value; if a
"%" follows it directly, it is divided by 100 (7.00% -> 0.07, 99.5% -> 0.995), so rules compare
fractions. Text that starts otherwise gives None: "% change" alerts ("Events 150% higher ...
compared to ...") state a relative change, not the metric, and "No% ..." means no data.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from responder.config.base import StrictModel
from responder.errors import PayloadError, SignatureError
from responder.events import Event, EventStatus, Severity, fingerprint
from responder.ingest.base import (
    IngestAdapter,
    IngestRequest,
    constant_time_equal,
    dig,
    load_json,
    parse_time,
    require_signature,
)

__all__ = ["RESOURCE_HEADER", "SIGNATURE_HEADER", "SentryAdapter", "SentryConfig", "metric_value"]

RESOURCE_HEADER = "Sentry-Hook-Resource"
SIGNATURE_HEADER = "Sentry-Hook-Signature"
_LEADING_NUMBER = re.compile(r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(%?)")
_METRIC_ACTIONS = {
    "critical": (EventStatus.FIRING, Severity.CRITICAL),
    "warning": (EventStatus.FIRING, Severity.WARNING),
    "resolved": (EventStatus.RESOLVED, None),
}
_ISSUE_STATUS = {"created": EventStatus.FIRING, "unresolved": EventStatus.FIRING, "resolved": EventStatus.RESOLVED}
_API_PROJECT = re.compile(r"/projects/[^/]+/([^/]+)/")


class SentryConfig(StrictModel):
    """`ingest.sentry`: the integration's credentials."""

    client_secret: SecretStr | None = Field(
        default=None,
        description="the integration's Client Secret; when set, Sentry-Hook-Signature is required on every delivery",
    )


def metric_value(description_text: Any) -> float | None:
    """The number starting `description_text`'s first line; "N%" becomes the fraction N/100."""
    if not isinstance(description_text, str):
        return None
    match = _LEADING_NUMBER.match(description_text.splitlines()[0] if description_text else "")
    if match is None:
        return None
    number = float(match.group(1))
    return round(number / 100, 12) if match.group(2) else number


def _labels(**values: Any) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None and v != ""}


def _text(obj: Any, path: str) -> str | None:
    value = dig(obj, path, required=False)
    return value if isinstance(value, str) and value else None


class SentryAdapter(IngestAdapter):
    """Sentry integration-platform webhooks, plus the legacy WebHooks plugin."""

    source: ClassVar[str] = "sentry"
    Config: ClassVar[type[StrictModel]] = SentryConfig
    config: SentryConfig

    @property
    def verifies(self) -> bool:
        return self.config.client_secret is not None

    def verify(self, request: IngestRequest) -> None:
        if self.config.client_secret is None:
            return
        signature = request.headers.get(SIGNATURE_HEADER, "").strip()
        if not signature:
            raise SignatureError(f"missing {SIGNATURE_HEADER} header", field=SIGNATURE_HEADER)
        key = self.config.client_secret.get_secret_value().encode("utf-8")
        expected = hmac.new(key, request.body, hashlib.sha256).hexdigest()
        require_signature(constant_time_equal(signature.lower(), expected), SIGNATURE_HEADER)

    def parse(self, request: IngestRequest) -> list[Event]:
        payload = load_json(request.body)
        if not isinstance(payload, dict):
            raise PayloadError("body must be a JSON object", field="body", status=422)
        resource = request.headers.get(RESOURCE_HEADER, "").strip().lower()
        if not resource:
            if "triggering_rules" in payload:
                return self._legacy(payload, request)
            raise PayloadError(
                f"missing {RESOURCE_HEADER} header and the body is not a legacy plugin payload",
                field=RESOURCE_HEADER,
                status=422,
            )
        handler = {"metric_alert": self._metric_alert, "event_alert": self._event_alert, "issue": self._issue}
        return handler[resource](payload, request) if resource in handler else []

    def _event(self, request: IngestRequest, identity: tuple[str, ...], **fields: Any) -> Event:
        labels: dict[str, str] = fields["labels"]
        series = {k: labels[k] for k in identity if k in labels}
        return Event(
            source=self.source,
            fingerprint=fingerprint(self.source, fields["name"], series),
            received_at=request.received_at,
            **fields,
        )

    def _metric_alert(self, payload: dict[str, Any], request: IngestRequest) -> list[Event]:
        action = dig(payload, "action", kind=str)
        if action not in _METRIC_ACTIONS:
            raise PayloadError(f"unknown metric alert action {action!r}", field="action", status=422)
        status, severity = _METRIC_ACTIONS[action]
        incident = dig(payload, "data.metric_alert", kind=dict)
        name = dig(payload, "data.metric_alert.alert_rule.name", kind=str)
        identifier = dig(payload, "data.metric_alert.identifier", kind=(str, int))
        org = dig(payload, "data.metric_alert.organization_id", kind=(str, int))
        projects = incident.get("projects") or dig(incident, "alert_rule.projects", required=False) or []
        project = projects[0] if isinstance(projects, list) and projects and isinstance(projects[0], str) else None
        labels = _labels(
            project=project,
            environment=_text(incident, "alert_rule.environment"),
            alert_rule_id=dig(incident, "alert_rule.id", required=False),
            organization_id=org,
        )
        data = payload["data"]
        annotations = _labels(**{k: _text(data, k) for k in ("description_title", "description_text", "web_url")})
        field = "date_closed" if status is EventStatus.RESOLVED else "date_detected"
        raw_time = incident.get(field) or (None if status is EventStatus.RESOLVED else incident.get("date_started"))
        text = annotations.get("description_text", "")
        title = annotations.get("description_title") or f"{action.capitalize()}: {name}"
        return [
            self._event(
                request,
                ("project", "environment", "alert_rule_id"),
                name=name,
                service=project,
                status=status,
                severity=severity,
                value=metric_value(text),
                summary=f"{title} ({text.splitlines()[0]})" if text else title,
                url=annotations.get("web_url"),
                labels=labels,
                annotations=annotations,
                occurred_at=parse_time(raw_time, f"data.metric_alert.{field}", request.received_at),
                delivery_id=f"sentry:metric:{org}:{identifier}:{action}",
            )
        ]

    def _event_alert(self, payload: dict[str, Any], request: IngestRequest) -> list[Event]:
        rule = dig(payload, "data.triggered_rule", kind=str)
        event = dig(payload, "data.event", kind=dict)
        event_id = dig(payload, "data.event.event_id", kind=str)
        return [self._issue_event(event, rule, event_id, _text(event, "web_url"), request)]

    def _legacy(self, payload: dict[str, Any], request: IngestRequest) -> list[Event]:
        rules = dig(payload, "triggering_rules", kind=list)
        event = dig(payload, "event", required=False, kind=dict) or {}
        event_id = _text(event, "event_id") or _text(event, "id") or dig(payload, "event.event_id", kind=str)
        merged = {
            "issue_id": payload.get("id"),
            "project_slug": payload.get("project_slug") or payload.get("project"),
            "title": payload.get("message") or payload.get("culprit"),
            **{k: v for k, v in event.items() if v is not None},
        }
        url = _text(payload, "url")
        return [self._issue_event(merged, str(rule), event_id, url, request) for rule in rules]

    def _issue_event(
        self, event: dict[str, Any], rule: str, event_id: str, url: str | None, request: IngestRequest
    ) -> Event:
        tags = {str(t[0]): str(t[1]) for t in event.get("tags") or [] if isinstance(t, list) and len(t) == 2}
        api_url = _API_PROJECT.search(_text(event, "url") or "")
        project = (
            _text(event, "project_slug")
            or _text(event, "project_name")
            or (api_url.group(1) if api_url else None)
            or tags.get("project")
            or tags.get("service")
        )
        level = _text(event, "level") or tags.get("level")
        labels = _labels(
            project=project or event.get("project"),
            environment=_text(event, "environment") or tags.get("environment"),
            level=level,
            issue_id=event.get("issue_id"),
        )
        title = _text(event, "title") or _text(event, "message") or rule
        when = event.get("datetime") or event.get("timestamp")
        return self._event(
            request,
            ("project", "issue_id"),
            name=rule,
            service=project,
            status=EventStatus.FIRING,
            severity=Severity.parse(level),
            summary=f"{rule}: {title}",
            url=url,
            labels=labels,
            annotations=_labels(web_url=url),
            occurred_at=parse_time(when, "data.event.datetime", request.received_at),
            delivery_id=f"sentry:event:{event_id}:{rule}",
        )

    def _issue(self, payload: dict[str, Any], request: IngestRequest) -> list[Event]:
        action = dig(payload, "action", kind=str)
        issue = dig(payload, "data.issue", kind=dict)
        issue_id = dig(payload, "data.issue.id", kind=(str, int))
        title = dig(payload, "data.issue.title", kind=str)
        project = _text(issue, "project.slug") or _text(issue, "project.name")
        level, issue_env = _text(issue, "level"), _text(issue, "environment")
        time_field = {"created": "firstSeen", "unresolved": "lastSeen"}.get(action)
        raw_time = issue.get(time_field) if time_field else None
        url = _text(issue, "web_url")
        return [
            self._event(
                request,
                ("project", "issue_id"),
                name=title,
                service=project,
                status=_ISSUE_STATUS.get(action, EventStatus.INFO),
                severity=Severity.parse(level),
                summary=f"Sentry issue {_text(issue, 'shortId') or issue_id} {action}: {title}",
                url=url,
                labels=_labels(project=project, environment=issue_env, level=level, issue_id=issue_id),
                annotations=_labels(web_url=url),
                occurred_at=parse_time(raw_time, f"data.issue.{time_field}", request.received_at),
                delivery_id=f"sentry:issue:{issue_id}:{action}:{issue.get('lastSeen') or issue.get('status')}",
            )
        ]
