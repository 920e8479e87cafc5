"""AlertmanagerAdapter: optional bearer/basic auth, webhook v4 normalization, field-named errors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from responder.errors import PayloadError, SignatureError
from responder.events import EventStatus, Severity, fingerprint
from responder.ingest.alertmanager import AlertmanagerAdapter, AlertmanagerConfig
from responder.ingest.base import IngestRequest

PAYLOADS = Path(__file__).parent.parent / "payloads" / "alertmanager"
RECEIVED = datetime(2024, 11, 21, 9, 16, tzinfo=UTC)


def body(name: str) -> bytes:
    return (PAYLOADS / f"{name}.json").read_bytes()


def request(raw: bytes, headers: dict[str, str] | None = None) -> IngestRequest:
    return IngestRequest(body=raw, headers=CIMultiDict(headers or {}), received_at=RECEIVED)


def adapter(**config: Any) -> AlertmanagerAdapter:
    return AlertmanagerAdapter(AlertmanagerConfig.model_validate(config))


def parse(raw: bytes | dict[str, Any]) -> list[Any]:
    data = json.dumps(raw).encode() if isinstance(raw, dict) else raw
    return adapter().parse(request(data))


# --- verify ---------------------------------------------------------------------------------


def test_unauthenticated_by_default() -> None:
    a = adapter()
    assert a.verifies is False
    a.verify(request(body("firing")))


def test_bearer_token_good_bad_missing() -> None:
    a = adapter(bearer_token="am-token")
    assert a.verifies is True
    a.verify(request(b"", {"Authorization": "Bearer am-token"}))
    a.verify(request(b"", {"authorization": "bearer am-token"}))
    with pytest.raises(SignatureError) as bad:
        a.verify(request(b"", {"Authorization": "Bearer am-token-2"}))
    assert (bad.value.status, bad.value.field) == (401, "Authorization")
    with pytest.raises(SignatureError) as missing:
        a.verify(request(b""))
    assert missing.value.field == "Authorization"


def test_basic_auth_good_and_bad() -> None:
    a = adapter(basic_auth={"username": "am", "password": "pw:with:colons"})
    assert a.verifies is True
    a.verify(request(b"", {"Authorization": "Basic " + base64.b64encode(b"am:pw:with:colons").decode()}))
    with pytest.raises(SignatureError):
        a.verify(request(b"", {"Authorization": "Basic " + base64.b64encode(b"am:pw").decode()}))
    with pytest.raises(SignatureError):
        a.verify(request(b"", {"Authorization": "Bearer pw:with:colons"}))


# --- parse ----------------------------------------------------------------------------------


def test_firing() -> None:
    [event] = parse(body("firing"))
    assert event.source == "alertmanager"
    assert event.name == "PodCrashLooping"
    assert event.service == "kube-state-metrics"  # labels.job wins over labels.app
    assert event.status is EventStatus.FIRING
    assert event.severity is Severity.CRITICAL  # severity=page
    assert event.value == 6.0  # annotation `value`
    assert event.labels == {
        "alertname": "PodCrashLooping",
        "namespace": "payments",
        "pod": "checkout-api-7d9f8c6b5-x2k4p",
        "job": "kube-state-metrics",
        "app": "checkout-api",
        "severity": "page",
    }
    assert event.annotations["description"] == "6 restarts in 10m"
    assert event.summary == "Pod is restarting repeatedly"
    assert event.url is not None and event.url.startswith("http://prometheus.monitoring.svc:9090/graph")
    assert event.fingerprint == fingerprint("alertmanager", "PodCrashLooping", event.labels)
    assert event.occurred_at == datetime(2024, 11, 21, 9, 12, 41, 301000, tzinfo=UTC)
    assert event.received_at == RECEIVED
    assert event.delivery_id == "alertmanager:a41c0e9b6d2f7731:2024-11-21T09:12:41.301Z:firing"


def test_resolved() -> None:
    [fired] = parse(body("firing"))
    [event] = parse(body("resolved"))
    assert event.status is EventStatus.RESOLVED
    assert event.occurred_at == datetime(2024, 11, 21, 9, 40, 11, 301000, tzinfo=UTC)
    assert event.value == 0.0
    assert event.fingerprint == fired.fingerprint
    assert event.delivery_id == "alertmanager:a41c0e9b6d2f7731:2024-11-21T09:12:41.301Z:resolved"


def test_same_body_twice_same_delivery_id() -> None:
    assert parse(body("firing"))[0].delivery_id == parse(body("firing"))[0].delivery_id


@pytest.mark.parametrize(
    ("labels", "service"),
    [
        ({"service": "api", "job": "node", "app": "web"}, "api"),
        ({"job": "node", "app": "web"}, "node"),
        ({"app": "web"}, "web"),
        ({}, None),
    ],
)
def test_service_label_precedence(labels: dict[str, str], service: str | None) -> None:
    payload = json.loads(body("firing"))
    payload["alerts"][0]["labels"] = {"alertname": "X", **labels}
    assert parse(payload)[0].service == service


@pytest.mark.parametrize(("raw", "expected"), [("0.93", 0.93), ("97%", None), ("NaN", None), (None, None)])
def test_value_only_from_a_numeric_value_annotation(raw: str | None, expected: float | None) -> None:
    payload = json.loads(body("firing"))
    annotations = payload["alerts"][0]["annotations"]
    annotations.pop("value")
    if raw is not None:
        annotations["value"] = raw
    assert parse(payload)[0].value == expected


def test_missing_fingerprint_falls_back_to_the_series_fingerprint() -> None:
    payload = json.loads(body("firing"))
    del payload["alerts"][0]["fingerprint"]
    [event] = parse(payload)
    assert event.delivery_id == f"alertmanager:{event.fingerprint}:2024-11-21T09:12:41.301Z:firing"


@pytest.mark.parametrize("version", ["1", "3", None])
def test_version_must_be_4(version: str | None) -> None:
    payload = json.loads(body("firing"))
    if version is None:
        del payload["version"]
    else:
        payload["version"] = version
    with pytest.raises(PayloadError) as exc:
        parse(payload)
    assert (exc.value.status, exc.value.field) == (422, "version")


def test_missing_alertname_is_422_naming_the_alert() -> None:
    payload = json.loads(body("firing"))
    del payload["alerts"][0]["labels"]["alertname"]
    with pytest.raises(PayloadError) as exc:
        parse(payload)
    assert (exc.value.status, exc.value.field) == (422, "alerts.0.labels.alertname")


def test_alerts_must_be_a_list() -> None:
    payload = json.loads(body("firing"))
    payload["alerts"] = "none"
    with pytest.raises(PayloadError) as exc:
        parse(payload)
    assert (exc.value.status, exc.value.field) == (422, "alerts")


@pytest.mark.parametrize("raw", [b"not json", b"", b"\xff\xfe"])
def test_malformed_body_is_400(raw: bytes) -> None:
    with pytest.raises(PayloadError) as exc:
        parse(raw)
    assert (exc.value.status, exc.value.field) == (400, "body")
