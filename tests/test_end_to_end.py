"""Webhook in -> stream -> rule -> incident -> playbook steps against a local server -> status page, on Redis."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from tests.conftest import PAYLOADS, Sink

SECRET = "sentry-client-secret-0123456789"

RULES = """
rules:
  - id: api-error-rate
    description: Error rate above 5% in Sentry
    match: {source: sentry, name: {regex: "(?i).*error rate.*"}, service: api}
    when: {value: "> 0.05"}
    severity: critical
    group_by: [service]
    playbook: rollback-api
"""

PLAYBOOKS = """
playbooks:
  - id: rollback-api
    steps:
      - name: announce
        action: http.request
        with:
          url: "${SINK}/announce"
          json: {text: "#{{ incident.id }} {{ incident.title }}", value: "{{ incident.value }}"}
      - name: status degraded
        action: status.set
        with: {component: api, status: degraded_performance, message: "rolling back {{ incident.service }}"}
      - name: rollback
        action: http.request
        with: {url: "${SINK}/rollback/{{ incident.service }}", method: POST}
      - name: page
        action: pagerduty.trigger
        with: {summary: "{{ incident.title }}"}
    on_resolve:
      - name: status operational
        action: status.set
        with: {component: api, status: operational, message: recovered}
      - name: announce recovery
        action: http.request
        with: {url: "${SINK}/recovered"}
"""


def signed(name: str) -> tuple[bytes, dict[str, str]]:
    body = (PAYLOADS / "sentry" / name).read_bytes()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "Sentry-Hook-Resource": "metric_alert",
                  "Sentry-Hook-Signature": signature}


async def test_sentry_metric_alert_rolls_back_and_resolves(make_config: Any, make_app: Any, sink: Sink) -> None:
    loaded = make_config({
        "responder.yaml": "ingest: {sentry: {client_secret: '${SENTRY_SECRET}'}}\n"
                          "status_page: {components: [{id: api, name: API}]}\n",
        "rules/api.yaml": RULES, "playbooks/api.yaml": PLAYBOOKS,
    }, env={"SENTRY_SECRET": SECRET, "SINK": sink.url})
    client, services = await make_app(loaded)

    body, headers = signed("metric_alert_error_rate_critical.json")
    response = await client.post("/hooks/sentry", data=body, headers=headers)
    assert response.status == 202
    accepted = await response.json()
    assert accepted["accepted"] == 1 and len(accepted["event_ids"]) == 1
    assert await services.events.length() == 1  # in the stream before the 202

    assert await services.consumer.poll(block_ms=100) == 1
    await services.runner.drain()

    incidents = (await (await client.get("/api/v1/incidents?state=triggered")).json())["incidents"]
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident["rule_id"] == "api-error-rate" and incident["severity"] == "critical"
    assert incident["service"] == "api" and incident["value"] == 0.07

    # steps ran in order against the local server, with templated values
    assert sink.paths == ["/announce", "/rollback/api"]
    announce = sink.requests[0]
    assert f'"#{incident["id"]} ' in announce["body"] and '"value": "0.07"' in announce["body"]
    assert announce["headers"]["Idempotency-Key"].endswith(":announce")

    detail = await (await client.get(f"/api/v1/incidents/{incident['id']}")).json()
    steps = {s["step"]: s for s in detail["runs"][0]["steps"]}
    assert [s["status"] for s in detail["runs"][0]["steps"]] == ["ok", "ok", "ok", "skipped"]
    assert steps["page"]["reason"].startswith("no credentials for pagerduty")
    texts = [e["text"] for e in detail["timeline"]]
    assert texts[0] == "rule api-error-rate fired (value 0.07)" or texts[0].startswith("rule api-error-rate fired")
    assert texts.index("playbook rollback-api started") < texts.index("playbook rollback-api completed")

    status = await (await client.get("/status.json")).json()
    assert status["components"][0] == {**status["components"][0], "id": "api", "status": "degraded_performance"}
    assert status["overall"] == "degraded_performance"
    assert status["incidents"] == []  # nothing was published: internal incidents stay off the public page
    page = await (await client.get("/status")).text()
    assert "Degraded performance" in page and "rolling back api" in page
    assert incident["title"] not in page

    # the matching resolved alert resolves the incident, and the on_resolve steps restore the page
    body, headers = signed("metric_alert_error_rate_resolved.json")
    assert (await client.post("/hooks/sentry", data=body, headers=headers)).status == 202
    assert await services.consumer.poll(block_ms=100) == 1
    await services.runner.drain()

    detail = await (await client.get(f"/api/v1/incidents/{incident['id']}")).json()
    assert detail["state"] == "resolved" and detail["resolved_by"] == "rule:api-error-rate"
    assert sink.paths == ["/announce", "/rollback/api", "/recovered"]
    status = await (await client.get("/status.json")).json()
    assert status["components"][0]["status"] == "operational" and status["overall"] == "operational"
    assert status["incidents"] == []

    metrics = await (await client.get("/metrics")).text()
    assert 'responder_events_received_total{source="sentry"} 2.0' in metrics
    assert 'responder_rule_firings_total{rule="api-error-rate"} 1.0' in metrics
    assert 'responder_incidents{state="resolved"} 1.0' in metrics
    assert 'responder_playbook_steps_total{action="http.request",outcome="ok"} 3.0' in metrics
    assert "responder_webhook_to_first_action_seconds_count 1.0" in metrics


async def test_same_webhook_twice_is_processed_once(make_config: Any, make_app: Any, sink: Sink) -> None:
    loaded = make_config({"responder.yaml": "ingest: {sentry: {client_secret: '${SENTRY_SECRET}'}}\n",
                          "rules/api.yaml": RULES, "playbooks/api.yaml": PLAYBOOKS},
                         env={"SENTRY_SECRET": SECRET, "SINK": sink.url})
    client, services = await make_app(loaded)
    body, headers = signed("metric_alert_error_rate_critical.json")
    first = await (await client.post("/hooks/sentry", data=body, headers=headers)).json()
    again = await client.post("/hooks/sentry", data=body, headers=headers)
    assert again.status == 202
    second = await again.json()
    assert second["event_ids"] == first["event_ids"] and second["duplicates"] == first["event_ids"]
    assert second["accepted"] == 0
    assert await services.events.length() == 1
    assert await services.consumer.poll(block_ms=100) == 1
    await services.runner.drain()
    incidents = await services.incidents.store.list()
    assert len(incidents) == 1 and incidents[0].event_count == 1
    assert sink.paths == ["/announce", "/rollback/api"]


async def test_api_ack_and_resolve_need_the_write_token(make_config: Any, make_app: Any, sink: Sink) -> None:
    loaded = make_config({"responder.yaml": "server: {api_tokens: {write: '${TOKEN}'}}\n",
                          "rules/api.yaml": RULES, "playbooks/api.yaml": PLAYBOOKS},
                         env={"TOKEN": "write-token-abcdef", "SINK": sink.url})
    client, services = await make_app(loaded)
    body, headers = signed("metric_alert_error_rate_critical.json")
    del headers["Sentry-Hook-Signature"]  # no client secret configured: accepted unverified
    assert (await client.post("/hooks/sentry", data=body, headers=headers)).status == 202
    await services.consumer.poll(block_ms=100)
    await services.runner.drain()
    incident_id = (await services.incidents.store.list())[0].id

    denied = await client.post(f"/api/v1/incidents/{incident_id}/ack")
    assert denied.status == 401 and (await denied.json())["field"] == "Authorization"
    wrong = await client.post(f"/api/v1/incidents/{incident_id}/ack", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    auth = {"Authorization": "Bearer write-token-abcdef"}
    acked = await client.post(f"/api/v1/incidents/{incident_id}/ack", headers=auth, json={"actor": "alice"})
    assert acked.status == 200 and (await acked.json())["state"] == "acknowledged"
    resolved = await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=auth,
                                 json={"actor": "alice", "note": "rolled back by hand"})
    doc = await resolved.json()
    assert doc["state"] == "resolved" and doc["resolved_by"] == "user:alice"
    assert (await client.get("/api/v1/incidents/999")).status == 404
    bad = await client.get("/api/v1/incidents?state=sleeping")
    assert bad.status == 400 and (await bad.json())["field"] == "state"
    timeline = [e["text"] for e in (await (await client.get(f"/api/v1/incidents/{incident_id}")).json())["timeline"]]
    assert "acknowledged" in timeline and "resolved: rolled back by hand" in timeline
    await services.runner.drain()  # the on_resolve steps, before the sink goes away
