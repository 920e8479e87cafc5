"""PagerDutyAdapter: v3 signatures (several v1= values, rotation), each event type's normalization, bad input,
and the /hooks/pagerduty route on a real app (401/400 JSON naming the field, a redelivery deduplicated)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr, ValidationError

from responder.errors import PayloadError, SignatureError
from responder.events import EventStatus, Severity
from responder.ingest import adapter_by_source
from responder.ingest.base import IngestRequest
from responder.ingest.pagerduty import PagerDutyAdapter, PagerDutyWebhookConfig, sign

PAYLOADS = Path(__file__).parent.parent / "payloads" / "pagerduty"
RECEIVED = datetime(2024, 11, 21, 9, 18, tzinfo=UTC)
SECRET = "pd-webhook-secret-0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c"
OLD_SECRET = "pd-webhook-secret-old-1a2b3c4d5e6f7a8b9c0d1e2f3a4b"
HEADER = "X-PagerDuty-Signature"


def body(name: str) -> bytes:
    return (PAYLOADS / f"{name}.json").read_bytes()


def doc(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(body(name))
    return loaded


def request(raw: bytes, **headers: str) -> IngestRequest:
    h: CIMultiDict[str] = CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()})
    return IngestRequest(body=raw, headers=h, received_at=RECEIVED)


def adapter(*secrets: str) -> PagerDutyAdapter:
    return PagerDutyAdapter(PagerDutyWebhookConfig.model_validate({"signing_secrets": list(secrets)}))


def parse(raw: bytes | dict[str, Any]) -> list[Any]:
    data = json.dumps(raw).encode() if isinstance(raw, dict) else raw
    return adapter().parse(request(data))


def signed_headers(raw: bytes, *secrets: str) -> dict[str, str]:
    return {HEADER: ",".join(sign(raw, s) for s in secrets)}


# --- config ---------------------------------------------------------------------------------------


def test_registered_under_its_source() -> None:
    assert adapter_by_source()["pagerduty"] is PagerDutyAdapter


def test_config_takes_a_list_a_single_string_and_drops_unset_entries() -> None:
    assert PagerDutyWebhookConfig().signing_secrets == []
    one = PagerDutyWebhookConfig.model_validate({"signing_secrets": SECRET})
    assert [s.get_secret_value() for s in one.signing_secrets] == [SECRET]
    two = PagerDutyWebhookConfig.model_validate({"signing_secrets": [SECRET, None, "", OLD_SECRET]})
    assert [s.get_secret_value() for s in two.signing_secrets] == [SECRET, OLD_SECRET]
    assert PagerDutyWebhookConfig.model_validate({"signing_secrets": None}).signing_secrets == []
    assert SECRET not in repr(two)
    with pytest.raises(ValidationError):
        PagerDutyWebhookConfig.model_validate({"signing_secret": SECRET})  # unknown key


# --- verify ---------------------------------------------------------------------------------------


def test_unsigned_deliveries_accepted_without_secrets() -> None:
    unsigned = adapter()
    assert unsigned.verifies is False
    unsigned.verify(request(body("incident_acknowledged")))


def test_good_signature_over_the_raw_body_passes() -> None:
    raw = body("incident_acknowledged")
    checker = adapter(SECRET)
    assert checker.verifies is True
    checker.verify(request(raw, **{HEADER: sign(raw, SECRET)}))


def test_any_of_several_v1_values_may_match() -> None:
    raw = body("incident_acknowledged")
    header = f"v1={'0' * 64},{sign(raw, SECRET)}, v1={'f' * 64}"
    adapter(SECRET).verify(request(raw, **{HEADER: header}))


def test_rotation_either_configured_secret_verifies() -> None:
    raw = body("incident_resolved")
    both = adapter(OLD_SECRET, SECRET)
    both.verify(request(raw, **signed_headers(raw, SECRET)))  # PagerDuty signs with the new secret only
    both.verify(request(raw, **signed_headers(raw, OLD_SECRET)))  # ... or the old one, before the switch
    both.verify(request(raw, **signed_headers(raw, OLD_SECRET, SECRET)))  # ... or both, during the rotation


def test_other_signature_versions_are_ignored() -> None:
    raw = body("incident_acknowledged")
    good = sign(raw, SECRET)
    adapter(SECRET).verify(request(raw, **{HEADER: f"v2={good[3:]},{good}"}))
    with pytest.raises(SignatureError) as exc:  # the right digest under another version does not count
        adapter(SECRET).verify(request(raw, **{HEADER: f"v2={good[3:]}"}))
    assert exc.value.field == HEADER and exc.value.status == 401


@pytest.mark.parametrize("headers", [{}, {HEADER: ""}, {HEADER: "  "}])
def test_missing_signature_names_the_header(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError) as exc:
        adapter(SECRET).verify(request(body("incident_acknowledged"), **headers))
    assert exc.value.field == HEADER and exc.value.status == 401
    assert "missing" in exc.value.message


@pytest.mark.parametrize("header", [
    f"v1={'a' * 64}",
    "v1=",
    "garbage",
    ",".join(f"v1={i:064x}" for i in range(20)),  # more values than any rotation needs
])
def test_bad_signatures_are_rejected(header: str) -> None:
    with pytest.raises(SignatureError) as exc:
        adapter(SECRET).verify(request(body("incident_acknowledged"), **{HEADER: header}))
    assert exc.value.field == HEADER and exc.value.status == 401


def test_signed_with_another_secret_is_rejected() -> None:
    raw = body("incident_acknowledged")
    with pytest.raises(SignatureError):
        adapter(SECRET).verify(request(raw, **signed_headers(raw, OLD_SECRET)))


def test_signature_is_over_the_exact_bytes() -> None:
    raw = body("incident_acknowledged")
    reserialized = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    with pytest.raises(SignatureError):
        adapter(SECRET).verify(request(reserialized, **signed_headers(raw, SECRET)))


# --- parse: one Event per incident event ----------------------------------------------------------


@pytest.mark.parametrize(("name", "event_type", "status"), [
    ("incident_triggered", "incident.triggered", EventStatus.FIRING),
    ("incident_acknowledged", "incident.acknowledged", EventStatus.INFO),
    ("incident_unacknowledged", "incident.unacknowledged", EventStatus.FIRING),
    ("incident_escalated", "incident.escalated", EventStatus.FIRING),
    ("incident_reassigned", "incident.reassigned", EventStatus.INFO),
    ("incident_delegated", "incident.delegated", EventStatus.INFO),
    ("incident_priority_updated", "incident.priority_updated", EventStatus.INFO),
    ("incident_annotated", "incident.annotated", EventStatus.INFO),
    ("incident_responder_added", "incident.responder.added", EventStatus.INFO),
    ("incident_status_update_published", "incident.status_update_published", EventStatus.INFO),
    ("incident_resolved", "incident.resolved", EventStatus.RESOLVED),
])
def test_each_incident_event_type(name: str, event_type: str, status: EventStatus) -> None:
    [event] = parse(body(name))
    payload = doc(name)["event"]
    assert event.source == "pagerduty" and event.name == event_type and event.status is status
    assert event.delivery_id == f"pagerduty:{payload['id']}"
    assert event.labels["incident_id"] == "Q2ABCDEF1234" and event.labels["event_id"] == payload["id"]
    assert event.url == "https://acme.pagerduty.com/incidents/Q2ABCDEF1234"
    assert event.occurred_at == datetime.fromisoformat(payload["occurred_at"].replace("Z", "+00:00"))
    assert event.received_at == RECEIVED
    # one series per PagerDuty incident, whatever happened to it
    assert event.fingerprint == parse(body("incident_triggered"))[0].fingerprint


def test_incident_fields_become_labels() -> None:
    [event] = parse(body("incident_acknowledged"))
    assert event.service == "checkout-api"
    assert event.labels == {
        "incident_id": "Q2ABCDEF1234", "incident_number": "4821", "incident_key": "grafana:5f2a9c1d7e3b8a40",
        "incident_status": "acknowledged", "urgency": "high", "assignee": "Dana Ops", "assignees": "Dana Ops",
        "escalation_policy": "Payments primary", "team": "Payments", "service_id": "PSVC001",
        "event_id": "01FZ6T0Q1C4NCK7G2EXAMPLE", "agent": "Dana Ops", "agent_id": "PUSR123",
        "agent_type": "user_reference", "client": "PagerDuty",
    }
    assert event.severity is Severity.ERROR  # no priority: urgency high
    assert event.summary == ("PagerDuty incident #4821 acknowledged by Dana Ops: "
                             "checkout-api p95 latency 2.4s (> 2s) in production")
    assert event.annotations["title"] == "checkout-api p95 latency 2.4s (> 2s) in production"


def test_priority_sets_the_severity_and_a_label() -> None:
    [event] = parse(body("incident_priority_updated"))
    assert event.labels["priority"] == "P1" and event.severity is Severity.CRITICAL
    low = doc("incident_acknowledged")
    low["event"]["data"]["urgency"] = "low"
    assert parse(low)[0].severity is Severity.INFO


def test_escalation_without_an_agent_and_the_new_assignee() -> None:
    [event] = parse(body("incident_escalated"))
    assert event.labels["assignee"] == "Lee Secondary"
    assert "agent" not in event.labels and "client" not in event.labels
    assert event.summary.startswith("PagerDuty incident #4821 escalated: ")
    assert "escalation_level" not in event.labels  # the documented v3 incident carries none
    with_level = doc("incident_escalated")
    with_level["event"]["data"]["escalation_level"] = 2
    assert parse(with_level)[0].labels["escalation_level"] == "2"


def test_several_assignees_are_listed() -> None:
    payload = doc("incident_reassigned")
    payload["event"]["data"]["assignees"].append({"id": "PUSR123", "type": "user_reference", "summary": "Dana Ops"})
    [event] = parse(payload)
    assert event.labels["assignee"] == "Lee Secondary" and event.labels["assignees"] == "Lee Secondary, Dana Ops"


def test_note_status_update_and_responder_events_reference_their_incident() -> None:
    [note] = parse(body("incident_annotated"))
    assert note.annotations["content"] == "Rolled back to v1.42; watching p95."
    assert note.service is None and note.labels["incident_id"] == "Q2ABCDEF1234"
    assert "incident_key" not in note.labels  # a reference carries no key: the sync finds it by id
    [update] = parse(body("incident_status_update_published"))
    assert update.annotations["message"] == "Latency is back under 1s after the rollback."
    [added] = parse(body("incident_responder_added"))
    assert added.annotations["responder"] == "Lee Secondary" and added.annotations["responder_state"] == "pending"


def test_service_events_and_the_ping() -> None:
    [service] = parse(body("service_updated"))
    assert service.name == "service.updated" and service.service == "checkout-api"
    assert service.status is EventStatus.INFO and service.labels["service_id"] == "PSVC001"
    assert parse(body("pagey_ping")) == []
    unknown = doc("pagey_ping")
    unknown["event"].update(event_type="workflow.started", resource_type="workflow")
    assert parse(unknown) == []


def test_unknown_incident_event_types_still_become_events() -> None:
    payload = doc("incident_acknowledged")
    payload["event"]["event_type"] = "incident.custom_field_values.updated"
    [event] = parse(payload)
    assert event.name == "incident.custom_field_values.updated" and event.status is EventStatus.INFO


# --- parse: bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "field", "status"), [
    (b"", "body", 400),
    (b"{not json", "body", 400),
    (b"[]", "body", 422),
])
def test_malformed_bodies_name_the_body(raw: bytes, field: str, status: int) -> None:
    with pytest.raises(PayloadError) as exc:
        adapter().parse(request(raw))
    assert exc.value.field == field and exc.value.status == status


def _without(name: str, *path: str) -> dict[str, Any]:
    payload = copy.deepcopy(doc(name))
    target = payload
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return payload


@pytest.mark.parametrize(("name", "path", "field"), [
    ("incident_acknowledged", ("event",), "event"),
    ("incident_acknowledged", ("event", "id"), "event.id"),
    ("incident_acknowledged", ("event", "event_type"), "event.event_type"),
    ("incident_acknowledged", ("event", "data"), "event.data"),
    ("incident_acknowledged", ("event", "data", "id"), "event.data.id"),
    ("incident_annotated", ("event", "data", "incident"), "event.data.incident"),
    ("incident_annotated", ("event", "data", "incident", "id"), "event.data.incident.id"),
    ("service_updated", ("event", "data", "id"), "event.data.id"),
])
def test_missing_fields_are_named(name: str, path: tuple[str, ...], field: str) -> None:
    with pytest.raises(PayloadError) as exc:
        parse(_without(name, *path))
    assert exc.value.field == field and exc.value.status == 422


@pytest.mark.parametrize(("change", "field"), [
    ({"occurred_at": "yesterday"}, "event.occurred_at"),
    ({"id": 42}, "event.id"),
    ({"data": "incident"}, "event.data"),
    ({"agent": "Dana"}, "event.agent"),
])
def test_mistyped_fields_are_named(change: dict[str, Any], field: str) -> None:
    payload = doc("incident_acknowledged")
    payload["event"].update(change)
    with pytest.raises(PayloadError) as exc:
        parse(payload)
    assert exc.value.field == field and exc.value.status == 422


# --- the route ---------------------------------------------------------------------------------------


@pytest.fixture
async def hooks(make_config: Any, make_app: Any) -> tuple[Any, Any]:
    config = "ingest:\n  pagerduty:\n    signing_secrets: ['${PD_OLD:-}', '${PD_SECRET}']\n"
    result: tuple[Any, Any] = await make_app(make_config({"responder.yaml": config}, env={"PD_SECRET": SECRET}))
    return result


async def test_route_accepts_a_signed_delivery_and_dedupes_its_redelivery(hooks: tuple[Any, Any]) -> None:
    client, services = hooks
    raw = body("incident_escalated")
    headers = {"Content-Type": "application/json", "User-Agent": "PagerDuty-Webhook/V3.0",
               "X-Webhook-Id": "6f0d2b4e-1c2a-4a57-9b3e-2f9d8c7b6a50", "X-Webhook-Subscription": "PSUB777",
               HEADER: f"v1={'0' * 64},{sign(raw, SECRET)}"}
    first = await client.post("/hooks/pagerduty", data=raw, headers=headers)
    assert first.status == 202, await first.text()
    answer = await first.json()
    assert answer["accepted"] == 1 and answer["duplicates"] == []
    again = await client.post("/hooks/pagerduty", data=raw, headers=headers)  # PagerDuty's retry
    assert again.status == 202
    repeated = await again.json()
    assert repeated["accepted"] == 0 and repeated["duplicates"] == answer["event_ids"]
    assert await services.events.length() == 1


async def test_route_ping_is_accepted_with_no_event(hooks: tuple[Any, Any]) -> None:
    client, services = hooks
    raw = body("pagey_ping")
    response = await client.post("/hooks/pagerduty", data=raw,
                                 headers={"Content-Type": "application/json", HEADER: sign(raw, SECRET)})
    assert response.status == 202 and (await response.json())["accepted"] == 0
    assert await services.events.length() == 0


@pytest.mark.parametrize("signature", [None, f"v1={'b' * 64}"])
async def test_route_refuses_missing_or_bad_signatures_with_json(hooks: tuple[Any, Any], signature: str | None) -> None:
    client, services = hooks
    headers = {"Content-Type": "application/json"} | ({HEADER: signature} if signature else {})
    response = await client.post("/hooks/pagerduty", data=body("incident_resolved"), headers=headers)
    assert response.status == 401
    answer = await response.json()
    assert answer["field"] == HEADER and answer["error"]
    assert SECRET not in json.dumps(answer)
    assert await services.events.length() == 0


async def test_route_malformed_json_is_a_400_naming_the_body(hooks: tuple[Any, Any]) -> None:
    client, services = hooks
    raw = b'{"event": {"id": '
    response = await client.post("/hooks/pagerduty", data=raw,
                                 headers={"Content-Type": "application/json", HEADER: sign(raw, SECRET)})
    assert response.status == 400
    assert (await response.json())["field"] == "body"
    assert await services.events.length() == 0


async def test_route_missing_field_is_a_422_naming_it(hooks: tuple[Any, Any]) -> None:
    client, _ = hooks
    raw = json.dumps(_without("incident_acknowledged", "event", "data", "id")).encode()
    response = await client.post("/hooks/pagerduty", data=raw,
                                 headers={"Content-Type": "application/json", HEADER: sign(raw, SECRET)})
    assert response.status == 422
    assert (await response.json())["field"] == "event.data.id"


def test_secret_config_never_echoes_the_secret() -> None:
    config = PagerDutyWebhookConfig(signing_secrets=[SecretStr(SECRET)])
    assert SECRET not in config.model_dump_json()
