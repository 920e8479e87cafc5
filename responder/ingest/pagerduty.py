"""PagerDuty webhooks v3 (`POST /hooks/pagerduty`): one event per delivery, one Event per incident event.

Envelope: `{"event": {"id", "event_type", "resource_type", "occurred_at", "agent", "client", "data"}}`.
`data` is an `incident` for most incident events (id, number, status, incident_key, title, service,
assignees, escalation_policy, priority, urgency, html_url), an `incident_note` for `incident.annotated`,
an `incident_responder` for `incident.responder.*`, an `incident_status_update` for
`incident.status_update_published` (those three carry an `incident` reference instead), or a `service`.

Normalization:
- `source` "pagerduty", `name` the event type (`incident.escalated`, ...), `service` the PagerDuty service's
  name (`data.service.summary`), `url` the incident's page.
- `status`: triggered, reopened, unacknowledged and escalated are `firing` (the incident wants someone);
  resolved is `resolved`; everything else (acknowledged, reassigned, delegated, priority_updated,
  annotated, responder.*, status_update_published, service.*) is `info`.
- `severity`: the incident priority (P1..P5) when set, else its urgency (high -> error, low -> info).
- `labels`: incident_id, incident_number, incident_key, incident_status, urgency, priority, assignee (the
  first), assignees (all, comma-separated), escalation_policy, escalation_level (only when a payload
  carries one: the documented v3 incident has none), team, agent, agent_type, event_id.
- `fingerprint`: one series per PagerDuty incident (so `incident.resolved` clears what `triggered` fired).
- `delivery_id`: `pagerduty:<event.id>`; PagerDuty retries a delivery with the same event, so a
  redelivery is recognised before the 202.
- `pagey.ping` (the test delivery) and unknown resource types are acknowledged with no events.

Signature: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`, each the lowercase hex HMAC-SHA256 of the raw
body under one subscription secret (several during a rotation). The delivery is authentic when any
offered `v1` value matches any configured secret, compared in constant time. No timestamp is signed, so
there is no replay window: deduplication by event id does that job.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator

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

__all__ = ["SIGNATURE_HEADER", "PagerDutyAdapter", "PagerDutyWebhookConfig", "event_status", "sign"]

SIGNATURE_HEADER = "X-PagerDuty-Signature"
#: more offered signatures than this is not a rotation but an attempt to make us hash and compare a lot
MAX_SIGNATURES = 16
_FIRING = frozenset({"incident.triggered", "incident.reopened", "incident.unacknowledged", "incident.escalated"})
_RESOLVED = frozenset({"incident.resolved"})
_REFERENCED = frozenset({"incident_note", "incident_responder", "incident_status_update"})
_VERBS = {
    "incident.triggered": "triggered", "incident.acknowledged": "acknowledged", "incident.resolved": "resolved",
    "incident.escalated": "escalated", "incident.reassigned": "reassigned", "incident.delegated": "delegated",
    "incident.priority_updated": "priority changed", "incident.reopened": "reopened",
    "incident.unacknowledged": "unacknowledged", "incident.annotated": "note added",
    "incident.responder.added": "responder added", "incident.responder.replied": "responder replied",
    "incident.status_update_published": "status update published",
}


class PagerDutyWebhookConfig(StrictModel):
    """`ingest.pagerduty`: the v3 webhook subscription's signing secrets."""

    signing_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="the webhook subscription's signing secret(s); list the old and the new one during a "
                    "rotation. When any is set, X-PagerDuty-Signature is required on every delivery",
    )

    @field_validator("signing_secrets", mode="before", json_schema_input_type=str | list[str] | None)
    @classmethod
    def _drop_unset(cls, value: Any) -> Any:
        """One secret may be written as a plain string; an unset `${VAR:-}` (null or "") is no secret."""
        if value is None:
            return []
        if isinstance(value, str | SecretStr):
            value = [value]
        if isinstance(value, list):
            return [v for v in value
                    if v is not None and (v.get_secret_value() if isinstance(v, SecretStr) else str(v)).strip()]
        return value


def sign(body: bytes, secret: str) -> str:
    """The `v1=<hex>` value PagerDuty sends for `body` under `secret`."""
    return "v1=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def event_status(event_type: str) -> EventStatus:
    if event_type in _FIRING:
        return EventStatus.FIRING
    if event_type in _RESOLVED:
        return EventStatus.RESOLVED
    return EventStatus.INFO


def _labels(**values: Any) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None and v != ""}


def _summary_of(obj: Any, path: str) -> str | None:
    """`summary` of a reference object at `path` (service, priority, escalation policy, user...)."""
    value = dig(obj, f"{path}.summary", required=False)
    return value if isinstance(value, str) and value else None


def _text(obj: Any, path: str) -> str | None:
    value = dig(obj, path, required=False)
    return value if isinstance(value, str) and value else None


class PagerDutyAdapter(IngestAdapter):
    """PagerDuty v3 webhook subscriptions (`User-Agent: PagerDuty-Webhook/V3.0`)."""

    source: ClassVar[str] = "pagerduty"
    Config: ClassVar[type[StrictModel]] = PagerDutyWebhookConfig
    config: PagerDutyWebhookConfig

    @property
    def verifies(self) -> bool:
        return bool(self.config.signing_secrets)

    def verify(self, request: IngestRequest) -> None:
        if not self.config.signing_secrets:
            return
        header = request.headers.get(SIGNATURE_HEADER, "").strip()
        if not header:
            raise SignatureError(f"missing {SIGNATURE_HEADER} header", field=SIGNATURE_HEADER)
        offered = [part.strip() for part in header.split(",") if part.strip()]
        v1 = [part[3:].strip().lower() for part in offered if part[:3].lower() == "v1="]
        if not v1:
            raise SignatureError(f"{SIGNATURE_HEADER} carries no v1= signature", field=SIGNATURE_HEADER)
        if len(offered) > MAX_SIGNATURES:
            raise SignatureError(f"{SIGNATURE_HEADER} carries more than {MAX_SIGNATURES} signatures",
                                 field=SIGNATURE_HEADER)
        matched = False
        for secret in self.config.signing_secrets:
            expected = sign(request.body, secret.get_secret_value())[3:]
            for candidate in v1:  # no early exit: every pair is compared, in constant time
                matched = constant_time_equal(candidate, expected) or matched
        require_signature(matched, SIGNATURE_HEADER)

    def parse(self, request: IngestRequest) -> list[Event]:
        payload = load_json(request.body)
        if not isinstance(payload, dict):
            raise PayloadError("body must be a JSON object", field="body", status=422)
        envelope = dig(payload, "event", kind=dict)
        event_id = dig(payload, "event.id", kind=str)
        event_type = dig(payload, "event.event_type", kind=str)
        resource_type = dig(payload, "event.resource_type", required=False, kind=str) or event_type.split(".")[0]
        data = dig(payload, "event.data", kind=dict)
        dig(payload, "event.agent", required=False, kind=dict)  # a reference object or null
        dig(payload, "event.client", required=False, kind=dict)
        occurred_at = parse_time(envelope.get("occurred_at"), "event.occurred_at", request.received_at)
        common = {"event_id": event_id, "event_type": event_type, "envelope": envelope, "occurred_at": occurred_at}
        if resource_type == "incident" or event_type.startswith("incident."):
            return [self._incident_event(payload, data, request, **common)]
        if resource_type == "service" or event_type.startswith("service."):
            return [self._service_event(payload, data, request, **common)]
        return []  # pagey.ping, and resource types PagerDuty may add later

    def _agent(self, envelope: dict[str, Any]) -> dict[str, str]:
        agent = envelope.get("agent") if isinstance(envelope.get("agent"), dict) else {}
        client = envelope.get("client") if isinstance(envelope.get("client"), dict) else {}
        return _labels(agent=_text(agent, "summary"), agent_id=_text(agent, "id"), agent_type=_text(agent, "type"),
                       client=_text(client, "name"))

    def _incident_event(self, payload: dict[str, Any], data: dict[str, Any], request: IngestRequest, *,
                        event_id: str, event_type: str, envelope: dict[str, Any], occurred_at: datetime) -> Event:
        kind = data.get("type")
        # notes, responder requests and status updates carry a reference to the incident, not the incident
        referenced = kind in _REFERENCED or (kind != "incident" and isinstance(data.get("incident"), dict))
        where = "event.data.incident" if referenced else "event.data"
        incident: dict[str, Any] = dig(payload, where, kind=dict)
        incident_id: str = dig(payload, f"{where}.id", kind=str)
        number = incident.get("number") if isinstance(incident.get("number"), int) else None
        title = _text(incident, "title") or _text(incident, "summary") or f"PagerDuty incident {incident_id}"
        assignees = [a["summary"] for a in incident.get("assignees") or []
                     if isinstance(a, dict) and isinstance(a.get("summary"), str) and a["summary"]]
        teams = [t["summary"] for t in incident.get("teams") or []
                 if isinstance(t, dict) and isinstance(t.get("summary"), str) and t["summary"]]
        priority = _summary_of(incident, "priority")
        urgency = _text(incident, "urgency")
        level = incident.get("escalation_level")
        labels = _labels(
            incident_id=incident_id, incident_number=number, incident_key=_text(incident, "incident_key"),
            incident_status=_text(incident, "status"), urgency=urgency, priority=priority,
            assignee=assignees[0] if assignees else None, assignees=", ".join(assignees),
            escalation_policy=_summary_of(incident, "escalation_policy"),
            escalation_level=level if isinstance(level, int) and not isinstance(level, bool) else None,
            team=", ".join(teams), service_id=_text(incident, "service.id"), event_id=event_id,
            **self._agent(envelope),
        )
        annotations = _labels(title=title, html_url=_text(incident, "html_url"),
                              content=_text(data, "content") if kind == "incident_note" else None,
                              message=_text(data, "message") if kind != "incident" else None,
                              responder=_summary_of(data, "user") if kind == "incident_responder" else None,
                              responder_state=_text(data, "state") if kind == "incident_responder" else None,
                              resolve_reason=_text(incident, "resolve_reason.type"))
        severity = Severity.parse(priority) if priority else None
        if severity is None and urgency:
            severity = Severity.parse(urgency)
        ref = f"#{number}" if number is not None else incident_id
        verb = _VERBS.get(event_type, event_type.removeprefix("incident.").replace("_", " ").replace(".", " "))
        by = f" by {labels['agent']}" if labels.get("agent") else ""
        return Event(
            source=self.source, name=event_type, service=_summary_of(incident, "service"),
            status=event_status(event_type), severity=severity,
            summary=f"PagerDuty incident {ref} {verb}{by}: {title}"[:1000], url=_text(incident, "html_url"),
            labels=labels, annotations=annotations,
            fingerprint=fingerprint(self.source, "incident", {"incident_id": incident_id}),
            occurred_at=occurred_at, received_at=request.received_at, delivery_id=f"pagerduty:{event_id}",
        )

    def _service_event(self, payload: dict[str, Any], data: dict[str, Any], request: IngestRequest, *,
                       event_id: str, event_type: str, envelope: dict[str, Any], occurred_at: datetime) -> Event:
        service_id: str = dig(payload, "event.data.id", kind=str)
        name = _text(data, "summary") or _text(data, "name")
        return Event(
            source=self.source, name=event_type, service=name, status=EventStatus.INFO,
            summary=f"PagerDuty service {name or service_id} {event_type.removeprefix('service.')}",
            url=_text(data, "html_url"),
            labels=_labels(service_id=service_id, event_id=event_id, **self._agent(envelope)),
            fingerprint=fingerprint(self.source, "service", {"service_id": service_id}),
            occurred_at=occurred_at, received_at=request.received_at, delivery_id=f"pagerduty:{event_id}",
        )
