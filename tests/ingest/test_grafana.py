"""GrafanaAdapter: HMAC (with and without timestamp), bearer/basic auth, and per-alert normalization."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict
from pydantic import ValidationError

from responder.errors import PayloadError, SignatureError
from responder.events import EventStatus, Severity
from responder.ingest import alertmanager, grafana
from responder.ingest.base import IngestRequest
from responder.ingest.grafana import GrafanaAdapter, GrafanaConfig

PAYLOADS = Path(__file__).parent.parent / "payloads" / "grafana"
RECEIVED = datetime(2024, 11, 21, 9, 16, tzinfo=UTC)
NOW = int(RECEIVED.timestamp())
SECRET = "grafana-hmac-secret"


def body(name: str) -> bytes:
    return (PAYLOADS / f"{name}.json").read_bytes()


def request(raw: bytes, headers: dict[str, str] | None = None) -> IngestRequest:
    return IngestRequest(body=raw, headers=CIMultiDict(headers or {}), received_at=RECEIVED)


def adapter(**config: Any) -> GrafanaAdapter:
    return GrafanaAdapter(GrafanaConfig.model_validate(config))


def sign(message: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def parse(raw: bytes | dict[str, Any]) -> list[Any]:
    data = json.dumps(raw).encode() if isinstance(raw, dict) else raw
    return adapter().parse(request(data))


# --- verify ---------------------------------------------------------------------------------


def test_no_auth_configured_accepts_anything() -> None:
    a = adapter()
    assert a.verifies is False
    a.verify(request(body("resolved")))


@pytest.mark.parametrize(
    "header", ["X-Grafana-Alerting-Signature", "X-Grafana-Alert-Signature", "x-grafana-alert-signature"]
)
def test_hmac_over_raw_body_accepts_both_header_names(header: str) -> None:
    raw = body("firing_two_alerts")
    a = adapter(hmac_secret=SECRET)
    assert a.verifies is True
    a.verify(request(raw, {header: sign(raw)}))


def test_hmac_custom_signature_header() -> None:
    raw = body("firing_two_alerts")
    adapter(hmac_secret=SECRET, signature_header="X-Acme-Sig").verify(request(raw, {"X-Acme-Sig": sign(raw)}))


def test_hmac_missing_signature_names_the_header() -> None:
    with pytest.raises(SignatureError) as exc:
        adapter(hmac_secret=SECRET).verify(request(body("resolved")))
    assert (exc.value.status, exc.value.field) == (401, "X-Grafana-Alerting-Signature")


def test_hmac_bad_signature() -> None:
    raw = body("resolved")
    with pytest.raises(SignatureError) as exc:
        adapter(hmac_secret=SECRET).verify(request(raw, {"X-Grafana-Alert-Signature": sign(raw, "wrong")}))
    assert exc.value.field == "X-Grafana-Alert-Signature"


def test_hmac_with_timestamp_signs_ts_colon_body() -> None:
    raw = body("resolved")
    ts = str(NOW - 20)
    headers = {"X-Grafana-Alerting-Signature": sign(ts.encode() + b":" + raw), "X-Grafana-Alerting-Timestamp": ts}
    adapter(hmac_secret=SECRET).verify(request(raw, headers))


def test_hmac_with_timestamp_rejects_a_body_only_signature() -> None:
    raw = body("resolved")
    headers = {"X-Grafana-Alerting-Signature": sign(raw), "X-Grafana-Alerting-Timestamp": str(NOW)}
    with pytest.raises(SignatureError):
        adapter(hmac_secret=SECRET).verify(request(raw, headers))


def test_hmac_custom_timestamp_header() -> None:
    raw = body("resolved")
    ts = str(NOW)
    headers = {"X-Grafana-Alerting-Signature": sign(f"{ts}:".encode() + raw), "X-Ts": ts}
    adapter(hmac_secret=SECRET, timestamp_header="X-Ts").verify(request(raw, headers))


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_stale_timestamp_is_a_replay(offset: int) -> None:
    raw = body("resolved")
    ts = str(NOW + offset)
    headers = {"X-Grafana-Alerting-Signature": sign(f"{ts}:".encode() + raw), "X-Grafana-Alerting-Timestamp": ts}
    with pytest.raises(SignatureError) as exc:
        adapter(hmac_secret=SECRET).verify(request(raw, headers))
    assert exc.value.field == "X-Grafana-Alerting-Timestamp"


def test_max_skew_is_configurable() -> None:
    raw = body("resolved")
    ts = str(NOW - 500)
    headers = {"X-Grafana-Alerting-Signature": sign(f"{ts}:".encode() + raw), "X-Grafana-Alerting-Timestamp": ts}
    adapter(hmac_secret=SECRET, max_skew_seconds=600).verify(request(raw, headers))


@pytest.mark.parametrize("ts", ["yesterday", "1732180530.5", "-5", ""])
def test_non_numeric_timestamp_is_rejected(ts: str) -> None:
    raw = body("resolved")
    headers = {"X-Grafana-Alerting-Signature": sign(f"{ts}:".encode() + raw), "X-Grafana-Alerting-Timestamp": ts}
    with pytest.raises(SignatureError) as exc:
        adapter(hmac_secret=SECRET).verify(request(raw, headers))
    assert exc.value.field == "X-Grafana-Alerting-Timestamp"


def test_bearer_token() -> None:
    a = adapter(bearer_token="tok-123")
    assert a.verifies is True
    a.verify(request(b"{}", {"Authorization": "Bearer tok-123"}))
    for headers in ({"Authorization": "Bearer tok-999"}, {"Authorization": "Basic tok-123"}):
        with pytest.raises(SignatureError) as exc:
            a.verify(request(b"{}", headers))
        assert exc.value.field == "Authorization"
    with pytest.raises(SignatureError) as missing:
        a.verify(request(b"{}"))
    assert missing.value.field == "Authorization"


def test_basic_auth() -> None:
    a = adapter(basic_auth={"username": "grafana", "password": "s3cret"})
    good = base64.b64encode(b"grafana:s3cret").decode()
    a.verify(request(b"{}", {"Authorization": f"Basic {good}"}))
    for creds in (b"grafana:wrong", b"other:s3cret", b"grafana"):
        with pytest.raises(SignatureError):
            a.verify(request(b"{}", {"Authorization": f"Basic {base64.b64encode(creds).decode()}"}))
    with pytest.raises(SignatureError):
        a.verify(request(b"{}", {"Authorization": "Basic not-base64!"}))


def test_bearer_and_basic_together_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="not both"):
        GrafanaConfig.model_validate({"bearer_token": "t", "basic_auth": {"username": "u", "password": "p"}})


def test_every_configured_option_must_pass() -> None:
    raw = body("resolved")
    a = adapter(hmac_secret=SECRET, bearer_token="tok-123")
    a.verify(request(raw, {"Authorization": "Bearer tok-123", "X-Grafana-Alerting-Signature": sign(raw)}))
    with pytest.raises(SignatureError) as bad_bearer:
        a.verify(request(raw, {"Authorization": "Bearer nope", "X-Grafana-Alerting-Signature": sign(raw)}))
    assert bad_bearer.value.field == "Authorization"
    with pytest.raises(SignatureError) as no_hmac:
        a.verify(request(raw, {"Authorization": "Bearer tok-123"}))
    assert no_hmac.value.field == "X-Grafana-Alerting-Signature"


# --- parse ----------------------------------------------------------------------------------


def test_two_alert_batch_gives_two_events() -> None:
    first, second = parse(body("firing_two_alerts"))
    assert first.source == second.source == "grafana"
    assert first.name == second.name == "CheckoutHighLatency"
    assert (first.service, second.service) == ("checkout-api", "checkout-worker")  # labels.service, then job
    assert first.status is second.status is EventStatus.FIRING
    assert (first.severity, second.severity) == (Severity.CRITICAL, Severity.WARNING)
    assert (first.value, second.value) == (2.41, 3.07)  # refId A of {A, C}; the only entry of {B}
    assert first.labels == {
        "alertname": "CheckoutHighLatency",
        "grafana_folder": "Payments",
        "service": "checkout-api",
        "severity": "critical",
    }
    assert first.annotations["runbook_url"] == "https://runbooks.acme.dev/checkout-latency"
    assert first.summary == "p95 latency above 2s"
    assert first.url == "https://grafana.acme.dev/alerting/grafana/be8x1c2d3e/view?orgId=1"
    assert first.occurred_at == datetime(2024, 11, 21, 9, 15, 30, tzinfo=UTC)
    assert first.delivery_id == "grafana:5f2a9c1d7e3b8a40:2024-11-21T09:15:30Z:firing"
    assert second.delivery_id == "grafana:9b04e7c2a1d35f68:2024-11-21T09:16:00Z:firing"
    assert first.fingerprint != second.fingerprint


def test_resolved_uses_ends_at_and_keeps_the_series() -> None:
    [fired, _] = parse(body("firing_two_alerts"))
    [resolved] = parse(body("resolved"))
    assert resolved.status is EventStatus.RESOLVED
    assert resolved.occurred_at == datetime(2024, 11, 21, 9, 32, 30, tzinfo=UTC)
    assert resolved.value == 1.12
    assert resolved.fingerprint == fired.fingerprint
    assert resolved.delivery_id == "grafana:5f2a9c1d7e3b8a40:2024-11-21T09:15:30Z:resolved"


def test_redelivery_gives_the_same_delivery_ids() -> None:
    raw = body("firing_two_alerts")
    assert [e.delivery_id for e in parse(raw)] == [e.delivery_id for e in parse(raw)]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"B": 3.5}, 3.5),
        ({"C": 1, "A": 7.25}, 7.25),
        ({"C": 1, "D": 2}, 1.0),
        ({"A": None, "C": 1}, None),
        ({"B": None}, None),
        (None, None),
        ({}, None),
    ],
)
def test_value_selection(values: Any, expected: float | None) -> None:
    payload = json.loads(body("resolved"))
    payload["alerts"][0]["values"] = values
    [event] = parse(payload)
    assert event.value == expected


def test_the_alert_parser_is_shared_with_alertmanager() -> None:
    assert grafana.parse_alerts is alertmanager.parse_alerts  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("alerts"), "alerts"),
        (lambda p: p.update(alerts={"0": {}}), "alerts"),
        (lambda p: p["alerts"][1]["labels"].pop("alertname"), "alerts.1.labels.alertname"),
        (lambda p: p["alerts"][0].pop("labels"), "alerts.0.labels"),
        (lambda p: p["alerts"][0].update(status="pending"), "alerts.0.status"),
        (lambda p: p["alerts"][1].pop("startsAt"), "alerts.1.startsAt"),
        (lambda p: p["alerts"][0].update(startsAt="not a time"), "alerts.0.startsAt"),
    ],
)
def test_bad_fields_are_422_naming_the_path(mutate: Any, field: str) -> None:
    payload = json.loads(body("firing_two_alerts"))
    mutate(payload)
    with pytest.raises(PayloadError) as exc:
        parse(payload)
    assert (exc.value.status, exc.value.field) == (422, field)


def test_empty_alert_list_gives_no_events() -> None:
    payload = json.loads(body("resolved"))
    payload["alerts"] = []
    assert parse(payload) == []


def test_malformed_json_is_400_naming_body() -> None:
    with pytest.raises(PayloadError) as exc:
        parse(b'{"alerts": [')
    assert (exc.value.status, exc.value.field) == (400, "body")
