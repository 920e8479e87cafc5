"""UptimeRobotAdapter: token checks, the JSON / form / query-string encodings, and field errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr

from responder.errors import PayloadError, SignatureError
from responder.events import EventStatus, Severity, fingerprint
from responder.ingest.base import IngestRequest
from responder.ingest.uptimerobot import UptimeRobotAdapter, UptimeRobotConfig

PAYLOADS = Path(__file__).parent.parent / "payloads" / "uptimerobot"
RECEIVED = datetime(2024, 11, 21, 9, 16, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"
TOKEN = "u7Rk2p9QwXz"


def fields(name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


def request(
    raw: bytes = b"",
    *,
    content_type: str = "application/json",
    method: str = "POST",
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    path_token: str | None = None,
) -> IngestRequest:
    return IngestRequest(
        body=raw,
        headers=CIMultiDict(headers or {}),
        query=query or {},
        method=method,
        content_type=content_type,
        path_token=path_token,
        received_at=RECEIVED,
    )


def as_json(data: dict[str, Any]) -> IngestRequest:
    return request(json.dumps(data).encode())


def as_form(data: dict[str, Any]) -> IngestRequest:
    return request(urlencode(data).encode(), content_type=FORM)


def as_query(data: dict[str, str]) -> IngestRequest:
    return request(method="GET", content_type="", query=data)


open_adapter = UptimeRobotAdapter(UptimeRobotConfig())
guarded = UptimeRobotAdapter(UptimeRobotConfig(token=SecretStr(TOKEN)))


def parse_one(req: IngestRequest) -> Any:
    [event] = open_adapter.parse(req)
    return event


# --- verify ---------------------------------------------------------------------------------


def test_class_contract() -> None:
    assert UptimeRobotAdapter.source == "uptimerobot"
    assert UptimeRobotAdapter.accepts_get is True
    assert FORM in UptimeRobotAdapter.content_types
    assert "application/json" in UptimeRobotAdapter.content_types


def test_no_token_configured_accepts_unverified() -> None:
    assert open_adapter.verifies is False
    open_adapter.verify(request())


@pytest.mark.parametrize(
    "req",
    [
        request(path_token=TOKEN),
        request(query={"token": TOKEN, "monitorID": "1"}),
        request(headers={"X-Responder-Token": TOKEN}),
        request(headers={"Authorization": f"Bearer {TOKEN}"}),
        request(path_token="stale-token", headers={"x-responder-token": TOKEN}),
    ],
)
def test_token_accepted_in_each_place(req: IngestRequest) -> None:
    assert guarded.verifies is True
    guarded.verify(req)


def test_missing_token_names_token() -> None:
    with pytest.raises(SignatureError) as exc:
        guarded.verify(request(headers={"Authorization": "Basic abc"}))
    assert (exc.value.status, exc.value.field) == (401, "token")


@pytest.mark.parametrize(
    "req",
    [
        request(path_token="nope"),
        request(query={"token": TOKEN[:-1]}),
        request(headers={"X-Responder-Token": TOKEN + "x"}),
        request(headers={"Authorization": "Bearer nope"}),
    ],
)
def test_wrong_token_is_rejected(req: IngestRequest) -> None:
    with pytest.raises(SignatureError) as exc:
        guarded.verify(req)
    assert exc.value.field == "token"


# --- parse ----------------------------------------------------------------------------------


def test_down() -> None:
    event = parse_one(as_json(fields("down")))
    assert event.source == "uptimerobot"
    assert event.name == "checkout healthz"
    assert event.service == "checkout healthz"
    assert event.status is EventStatus.FIRING
    assert event.severity is Severity.CRITICAL
    assert event.value is None
    assert event.labels == {
        "monitor_id": "797741235",
        "monitor_url": "https://checkout.acme.dev/healthz",
        "alert_type": "down",
    }
    assert event.annotations == {"alert_details": "HTTP 503 - Service Unavailable"}  # `*ssl...*` dropped
    assert event.summary == "checkout healthz is down: HTTP 503 - Service Unavailable"
    assert event.fingerprint == fingerprint("uptimerobot", "checkout healthz", {"monitor_id": "797741235"})
    assert event.occurred_at == datetime.fromtimestamp(1732180512, UTC)
    assert event.delivery_id == "uptimerobot:797741235:1:1732180512"


def test_up_resolves_the_same_series_with_the_outage_duration() -> None:
    down = parse_one(as_json(fields("down")))
    up = parse_one(as_json(fields("up")))
    assert up.status is EventStatus.RESOLVED
    assert up.severity is None
    assert up.value == 428.0
    assert up.fingerprint == down.fingerprint
    assert up.labels["alert_type"] == "up"
    assert up.delivery_id == "uptimerobot:797741235:2:1732180940"
    assert "up again after 428s" in up.summary


def test_ssl_expiry_is_its_own_warning_series() -> None:
    down = parse_one(as_json(fields("down")))
    ssl = parse_one(as_json(fields("ssl_expiry")))
    assert ssl.name == "checkout healthz SSL expiry"
    assert ssl.service == "checkout healthz"
    assert (ssl.status, ssl.severity) == (EventStatus.FIRING, Severity.WARNING)
    assert ssl.value == 7.0
    assert ssl.annotations["ssl_expiry_date"] == "2024-12-12"
    assert ssl.fingerprint != down.fingerprint


@pytest.mark.parametrize("case", ["down", "up", "ssl_expiry"])
def test_json_form_and_query_encodings_agree(case: str) -> None:
    data = fields(case)
    by_json, by_form, by_query = (parse_one(r) for r in (as_json(data), as_form(data), as_query(data)))
    dumped = [e.model_dump(exclude={"id"}) for e in (by_json, by_form, by_query)]
    assert dumped[0] == dumped[1] == dumped[2]


def test_legacy_get_query_string() -> None:
    query = {
        "monitorID": "797741235",
        "monitorURL": "https://checkout.acme.dev/healthz",
        "monitorFriendlyName": "checkout healthz",
        "alertType": "2",
        "alertTypeFriendlyName": "Up",
        "alertDetails": "HTTP 200 - OK",
        "alertDuration": "428",
        "alertDateTime": "1732180940",
        "service": "checkout",
        "token": TOKEN,
    }
    event = parse_one(request(method="GET", content_type="", query=query))
    assert event.status is EventStatus.RESOLVED
    assert event.service == "checkout"
    assert event.value == 428.0
    assert "token" not in event.labels and "token" not in event.annotations


def test_service_query_parameter_overrides_the_monitor_name() -> None:
    req = request(json.dumps(fields("down")).encode(), query={"service": "checkout-api"})
    assert parse_one(req).service == "checkout-api"


def test_numbers_in_a_json_template_without_quotes() -> None:
    data: dict[str, Any] = {**fields("down"), "monitorID": 797741235, "alertType": 1, "alertDateTime": 1732180512}
    assert parse_one(as_json(data)).delivery_id == "uptimerobot:797741235:1:1732180512"


def test_placeholder_time_falls_back_to_received_at() -> None:
    data = {**fields("down"), "alertDateTime": "*alertDateTime*", "monitorFriendlyName": "*monitorFriendlyName*"}
    event = parse_one(as_json(data))
    assert event.occurred_at == RECEIVED
    assert event.delivery_id == f"uptimerobot:797741235:1:{RECEIVED.isoformat()}"
    assert event.name == "https://checkout.acme.dev/healthz"  # monitorURL when the name is missing


def test_redelivery_gives_the_same_delivery_id() -> None:
    assert parse_one(as_json(fields("down"))).delivery_id == parse_one(as_form(fields("down"))).delivery_id


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"monitorID": None}, "monitorID"),
        ({"monitorID": "*monitorID*"}, "monitorID"),
        ({"monitorID": "  "}, "monitorID"),
        ({"alertType": None}, "alertType"),
        ({"alertType": "4"}, "alertType"),
        ({"alertType": "*alertType*"}, "alertType"),
        ({"alertDateTime": "last tuesday"}, "alertDateTime"),
    ],
)
def test_required_fields_are_422(change: dict[str, str | None], field: str) -> None:
    merged: dict[str, str | None] = {**fields("down"), **change}
    data = {k: v for k, v in merged.items() if v is not None}
    for req in (as_json(data), as_form(data), as_query(data)):
        with pytest.raises(PayloadError) as exc:
            open_adapter.parse(req)
        assert (exc.value.status, exc.value.field) == (422, field)


def test_empty_get_is_422_naming_monitor_id() -> None:
    with pytest.raises(PayloadError) as exc:
        open_adapter.parse(request(method="GET", content_type=""))
    assert (exc.value.status, exc.value.field) == (422, "monitorID")


def test_malformed_json_is_400_naming_body() -> None:
    with pytest.raises(PayloadError) as exc:
        open_adapter.parse(request(b'{"monitorID": '))
    assert (exc.value.status, exc.value.field) == (400, "body")


def test_json_array_is_422_naming_body() -> None:
    with pytest.raises(PayloadError) as exc:
        open_adapter.parse(request(b"[]"))
    assert (exc.value.status, exc.value.field) == (422, "body")


def test_unsupported_content_type_is_415() -> None:
    with pytest.raises(PayloadError) as exc:
        open_adapter.parse(request(b"monitorID=1", content_type="text/plain"))
    assert exc.value.status == 415


def test_content_type_parameters_are_ignored() -> None:
    raw = urlencode(fields("down")).encode()
    event = parse_one(request(raw, content_type="application/x-www-form-urlencoded; charset=utf-8"))
    assert event.status is EventStatus.FIRING
