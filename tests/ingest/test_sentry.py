"""SentryAdapter: signature over the raw body, each resource's normalization, and field-named errors."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr

from responder.errors import PayloadError, SignatureError
from responder.events import EventStatus, Severity
from responder.ingest.base import IngestRequest
from responder.ingest.sentry import SentryAdapter, SentryConfig, metric_value

PAYLOADS = Path(__file__).parent.parent / "payloads" / "sentry"
RECEIVED = datetime(2024, 11, 21, 9, 16, tzinfo=UTC)
SECRET = "4c1b0a5e9d8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b"


def body(name: str) -> bytes:
    return (PAYLOADS / f"{name}.json").read_bytes()


def request(raw: bytes, resource: str | None = None, **headers: str) -> IngestRequest:
    h: CIMultiDict[str] = CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()})
    if resource is not None:
        h["Sentry-Hook-Resource"] = resource
    return IngestRequest(body=raw, headers=h, received_at=RECEIVED)


def sign(raw: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def parse(raw: bytes | dict[str, Any], resource: str | None = None, **headers: str) -> list[Any]:
    data = json.dumps(raw).encode() if isinstance(raw, dict) else raw
    return SentryAdapter(SentryConfig()).parse(request(data, resource, **headers))


signed = SentryAdapter(SentryConfig(client_secret=SecretStr(SECRET)))


# --- verify ---------------------------------------------------------------------------------


def test_unsigned_deliveries_accepted_without_a_secret() -> None:
    adapter = SentryAdapter(SentryConfig())
    assert adapter.verifies is False
    adapter.verify(request(body("metric_alert_critical"), "metric_alert"))


def test_good_signature_over_the_raw_body_passes() -> None:
    raw = body("metric_alert_critical")
    assert signed.verifies is True
    signed.verify(request(raw, "metric_alert", Sentry_Hook_Signature=sign(raw)))
    signed.verify(request(raw, "metric_alert", Sentry_Hook_Signature=sign(raw).upper()))


def test_missing_signature_names_the_header() -> None:
    with pytest.raises(SignatureError) as exc:
        signed.verify(request(body("metric_alert_critical"), "metric_alert"))
    assert exc.value.field == "Sentry-Hook-Signature"
    assert exc.value.status == 401


def test_wrong_secret_is_rejected() -> None:
    raw = body("metric_alert_critical")
    with pytest.raises(SignatureError) as exc:
        signed.verify(request(raw, "metric_alert", Sentry_Hook_Signature=sign(raw, "another-secret")))
    assert exc.value.field == "Sentry-Hook-Signature"


def test_signature_is_over_exact_bytes_not_reserialized_json() -> None:
    raw = body("event_alert")
    compact = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    assert compact != raw
    with pytest.raises(SignatureError):
        signed.verify(request(compact, "event_alert", Sentry_Hook_Signature=sign(raw)))


def test_legacy_plugin_is_refused_when_a_client_secret_is_set() -> None:
    with pytest.raises(SignatureError) as exc:
        signed.verify(request(body("legacy_plugin")))
    assert exc.value.field == "Sentry-Hook-Signature"


# --- metric_alert ---------------------------------------------------------------------------


def test_metric_alert_critical() -> None:
    [event] = parse(body("metric_alert_critical"), "metric_alert")
    assert event.source == "sentry"
    assert event.name == "checkout-api error spike"
    assert event.service == "checkout-api"
    assert event.status is EventStatus.FIRING
    assert event.severity is Severity.CRITICAL
    assert event.value == 1520.0
    assert event.labels == {
        "project": "checkout-api",
        "environment": "production",
        "alert_rule_id": "311",
        "organization_id": "44012",
    }
    assert event.annotations["description_text"] == "1520 events in the last 5 minutes"
    assert event.annotations["description_title"] == "Critical: checkout-api error spike"
    assert event.url == event.annotations["web_url"]
    assert event.url.startswith("https://sentry.io/organizations/acme/alerts/rules/details/311/")
    assert event.occurred_at == datetime(2024, 11, 21, 9, 15, tzinfo=UTC)
    assert event.received_at == RECEIVED
    assert event.delivery_id == "sentry:metric:44012:57:critical"
    assert "1520 events" in event.summary


def test_metric_alert_resolved_closes_the_same_series() -> None:
    [fired] = parse(body("metric_alert_critical"), "metric_alert")
    [resolved] = parse(body("metric_alert_resolved"), "metric_alert")
    assert resolved.status is EventStatus.RESOLVED
    assert resolved.severity is None
    assert resolved.fingerprint == fired.fingerprint
    assert resolved.occurred_at == datetime(2024, 11, 21, 9, 41, tzinfo=UTC)
    assert resolved.delivery_id == "sentry:metric:44012:57:resolved"


def test_metric_alert_warning_action() -> None:
    payload = json.loads(body("metric_alert_critical"))
    payload["action"] = "warning"
    [event] = parse(payload, "metric_alert")
    assert (event.status, event.severity) == (EventStatus.FIRING, Severity.WARNING)
    assert event.delivery_id == "sentry:metric:44012:57:warning"


def test_error_rate_fixtures_parse_to_fractions() -> None:
    [fired] = parse(body("metric_alert_error_rate_critical"), "metric_alert")
    [resolved] = parse(body("metric_alert_error_rate_resolved"), "metric_alert")
    assert (fired.name, fired.service, fired.labels["environment"]) == ("api error rate", "api", "production")
    assert fired.value == 0.07
    assert fired.value > 0.05
    assert resolved.value == 0.01
    assert resolved.status is EventStatus.RESOLVED
    assert resolved.fingerprint == fired.fingerprint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1520 events in the last 5 minutes", 1520.0),
        ("1520.0 events in the last 5 minutes\nFilter: level:error", 1520.0),
        ("7.00% failure rate in the last 10 minutes", 0.07),
        ("7% failure rate in the last 10 minutes", 0.07),
        ("7.0% failure rate in the last 10 minutes", 0.07),
        ("0.07 failure_rate() in the last 10 minutes", 0.07),
        ("99.5% sessions crash free rate in the last hour", 0.995),
        ("12 users affected in the last 1 hour\nThreshold: Static", 12.0),
        ("1.5e3 events in the last 5 minutes", 1500.0),
        ("Events 150% higher in the last 5 minutes compared to the same time one hour ago", None),
        ("No% sessions crash free rate in the last hour", None),
        ("", None),
        (None, None),
    ],
)
def test_metric_value_rule(text: str | None, expected: float | None) -> None:
    assert metric_value(text) == expected


def test_same_body_twice_gives_the_same_delivery_id_whatever_request_id() -> None:
    raw = body("metric_alert_critical")
    first = parse(raw, "metric_alert", Request_ID="9f1d0c2b3a4e4f5a8b7c6d5e4f3a2b1c")
    second = parse(raw, "metric_alert", Request_ID="0a1b2c3d4e5f40718293a4b5c6d7e8f9")
    assert first[0].delivery_id == second[0].delivery_id
    assert first[0].fingerprint == second[0].fingerprint
    assert first[0].id != second[0].id


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("data", "metric_alert", "alert_rule", "name"), "data.metric_alert.alert_rule.name"),
        (("data", "metric_alert", "identifier"), "data.metric_alert.identifier"),
        (("data", "metric_alert", "organization_id"), "data.metric_alert.organization_id"),
        (("data", "metric_alert"), "data.metric_alert"),
        (("action",), "action"),
    ],
)
def test_metric_alert_missing_field_is_422_naming_it(path: tuple[str, ...], field: str) -> None:
    payload = json.loads(body("metric_alert_critical"))
    parent = payload
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(PayloadError) as exc:
        parse(payload, "metric_alert")
    assert (exc.value.status, exc.value.field) == (422, field)


def test_metric_alert_unknown_action_is_422() -> None:
    payload = json.loads(body("metric_alert_critical"))
    payload["action"] = "exploded"
    with pytest.raises(PayloadError) as exc:
        parse(payload, "metric_alert")
    assert (exc.value.status, exc.value.field) == (422, "action")


# --- event_alert, issue, legacy -------------------------------------------------------------


def test_event_alert() -> None:
    [event] = parse(body("event_alert"), "event_alert")
    assert event.name == "checkout-api: new 5xx issue"
    assert event.service == "checkout-api"  # from the event's API URL; `project` is a numeric id
    assert event.status is EventStatus.FIRING
    assert event.severity is Severity.ERROR
    assert event.value is None
    assert event.labels == {
        "project": "checkout-api",
        "environment": "production",
        "level": "error",
        "issue_id": "4412983051",
    }
    assert (
        event.url == "https://sentry.io/organizations/acme/issues/4412983051/events/7d3c0a9b1e2f4c5d8a6b9c0d1e2f3a4b/"
    )
    assert event.occurred_at == datetime(2024, 11, 21, 9, 14, 3, 512000, tzinfo=UTC)
    assert event.delivery_id == "sentry:event:7d3c0a9b1e2f4c5d8a6b9c0d1e2f3a4b:checkout-api: new 5xx issue"
    assert "connection pool exhausted" in event.summary


def test_event_alert_missing_triggered_rule_is_422() -> None:
    payload = json.loads(body("event_alert"))
    del payload["data"]["triggered_rule"]
    with pytest.raises(PayloadError) as exc:
        parse(payload, "event_alert")
    assert (exc.value.status, exc.value.field) == (422, "data.triggered_rule")


def test_event_alert_missing_event_id_is_422() -> None:
    payload = json.loads(body("event_alert"))
    del payload["data"]["event"]["event_id"]
    with pytest.raises(PayloadError) as exc:
        parse(payload, "event_alert")
    assert (exc.value.status, exc.value.field) == (422, "data.event.event_id")


def test_issue_resolved() -> None:
    [event] = parse(body("issue_resolved"), "issue")
    assert event.name == "OperationalError: connection pool exhausted"
    assert event.service == "checkout-api"
    assert event.status is EventStatus.RESOLVED
    assert event.severity is Severity.ERROR
    assert event.labels == {"project": "checkout-api", "level": "error", "issue_id": "4412983051"}
    assert event.url == "https://sentry.io/organizations/acme/issues/4412983051/"
    assert event.delivery_id == "sentry:issue:4412983051:resolved:2024-11-21T09:41:55.002000Z"
    assert event.occurred_at == RECEIVED  # a resolution carries no time of its own


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("created", EventStatus.FIRING),
        ("unresolved", EventStatus.FIRING),
        ("assigned", EventStatus.INFO),
        ("archived", EventStatus.INFO),
        ("ignored", EventStatus.INFO),
    ],
)
def test_issue_actions(action: str, status: EventStatus) -> None:
    payload = json.loads(body("issue_resolved"))
    payload["action"] = action
    [event] = parse(payload, "issue")
    assert event.status is status
    assert event.delivery_id == f"sentry:issue:4412983051:{action}:2024-11-21T09:41:55.002000Z"


def test_issue_without_id_is_422() -> None:
    payload = json.loads(body("issue_resolved"))
    del payload["data"]["issue"]["id"]
    with pytest.raises(PayloadError) as exc:
        parse(payload, "issue")
    assert (exc.value.status, exc.value.field) == (422, "data.issue.id")


def test_legacy_plugin_without_headers() -> None:
    [event] = parse(body("legacy_plugin"))
    [alerted] = parse(body("event_alert"), "event_alert")
    assert event.name == "checkout-api: new 5xx issue"
    assert event.service == "checkout-api"
    assert event.status is EventStatus.FIRING
    assert event.severity is Severity.ERROR
    assert event.labels == alerted.labels
    assert event.url == "https://sentry.io/organizations/acme/issues/4412983051/?referrer=webhooks_plugin"
    assert event.delivery_id == alerted.delivery_id  # the same Sentry event through either integration


def test_legacy_plugin_one_event_per_triggering_rule() -> None:
    payload = json.loads(body("legacy_plugin"))
    payload["triggering_rules"] = ["rule one", "rule two"]
    events = parse(payload)
    assert [e.name for e in events] == ["rule one", "rule two"]
    assert len({e.delivery_id for e in events}) == 2


@pytest.mark.parametrize("resource", ["installation", "comment", "error", "seer", "INSTALLATION"])
def test_irrelevant_resources_give_no_events(resource: str) -> None:
    assert parse(body("installation_created"), resource) == []


def test_no_resource_header_and_not_legacy_is_422() -> None:
    with pytest.raises(PayloadError) as exc:
        parse(body("metric_alert_critical"))
    assert (exc.value.status, exc.value.field) == (422, "Sentry-Hook-Resource")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"   "])
def test_malformed_body_is_400_naming_body(raw: bytes) -> None:
    with pytest.raises(PayloadError) as exc:
        parse(raw, "metric_alert")
    assert (exc.value.status, exc.value.field) == (400, "body")


def test_non_object_json_is_422_naming_body() -> None:
    with pytest.raises(PayloadError) as exc:
        parse(b"[1, 2]", "metric_alert")
    assert (exc.value.status, exc.value.field) == (422, "body")
