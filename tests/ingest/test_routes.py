"""Bad input on every /hooks endpoint: a 4xx JSON naming the problem, never a 500, nothing in the stream."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import PAYLOADS

SECRET = "shared-secret-for-tests-0001"
CONFIG = f"""
ingest:
  sentry: {{client_secret: '{SECRET}'}}
  grafana: {{hmac_secret: '{SECRET}'}}
  alertmanager: {{bearer_token: '{SECRET}'}}
  uptimerobot: {{token: '{SECRET}'}}
"""


def _hmac(body: bytes) -> str:
    return hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


# source -> (good payload, function adding valid auth to headers for a body, a required field to drop)
Auth = Callable[[bytes], dict[str, str]]
SOURCES: dict[str, tuple[str, Auth, tuple[str, ...], str]] = {
    "sentry": ("sentry/metric_alert_error_rate_critical.json",
               lambda b: {"Sentry-Hook-Resource": "metric_alert", "Sentry-Hook-Signature": _hmac(b)},
               ("data", "metric_alert"), "data.metric_alert"),
    "grafana": ("grafana/firing_two_alerts.json", lambda b: {"X-Grafana-Alerting-Signature": _hmac(b)},
                ("alerts",), "alerts"),
    "alertmanager": ("alertmanager/firing.json", lambda b: {"Authorization": f"Bearer {SECRET}"},
                     ("alerts",), "alerts"),
    "uptimerobot": ("uptimerobot/down.json", lambda b: {"X-Responder-Token": SECRET}, ("monitorID",), "monitorID"),
}
SIGNATURE_FIELD = {"sentry": "Sentry-Hook-Signature", "grafana": "X-Grafana-Alerting-Signature",
                   "alertmanager": "Authorization", "uptimerobot": "token"}


def drop(doc: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    target = doc
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return doc


@pytest.fixture
async def hooks(make_config: Any, make_app: Any) -> tuple[Any, Any]:
    result: tuple[Any, Any] = await make_app(make_config({"responder.yaml": CONFIG}))
    return result


async def post(client: Any, source: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    response = await client.post(f"/hooks/{source}", data=io.BytesIO(body), headers=headers)
    assert response.content_type == "application/json"
    return response.status, await response.json()


@pytest.mark.parametrize("source", sorted(SOURCES))
async def test_bad_input_is_a_named_4xx_and_nothing_is_stored(hooks: tuple[Any, Any], source: str) -> None:
    client, services = hooks
    payload, auth, required, field = SOURCES[source]
    good = (PAYLOADS / payload).read_bytes()
    json_type = {"Content-Type": "application/json"}

    malformed = b'{"action": "critical", '
    status, body = await post(client, source, malformed, {**json_type, **auth(malformed)})
    assert (status, body["field"]) == (400, "body") and "JSON" in body["error"]

    status, body = await post(client, source, good, {"Content-Type": "text/plain", **auth(good)})
    assert (status, body["field"]) == (415, "Content-Type")

    missing = json.dumps(drop(json.loads(good), required)).encode()
    status, body = await post(client, source, missing, {**json_type, **auth(missing)})
    assert (status, body["field"]) == (422, field)

    huge = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    status, body = await post(client, source, huge, {**json_type, **auth(huge)})
    assert (status, body["field"]) == (413, "body")

    status, body = await post(client, source, good, json_type)
    assert (status, body["field"]) == (401, SIGNATURE_FIELD[source])

    bad_auth = {k: ("Bearer wrong" if k == "Authorization" else "0" * 64) for k in auth(good)}
    if source == "sentry":
        bad_auth["Sentry-Hook-Resource"] = "metric_alert"
    status, body = await post(client, source, good, {**json_type, **bad_auth})
    assert status == 401 and body["field"] == SIGNATURE_FIELD[source]

    assert await services.events.length() == 0
    status, body = await post(client, source, good, {**json_type, **auth(good)})  # and the good one passes
    assert status == 202 and body["accepted"] >= 1
    assert await services.events.length() == body["accepted"]


async def test_unknown_source_and_methods(hooks: tuple[Any, Any]) -> None:
    client, _ = hooks
    status, body = await post(client, "nagios", b"{}", {"Content-Type": "application/json"})
    assert (status, body["field"]) == (404, "source")
    response = await client.get("/hooks/sentry")
    assert response.status == 405 and (await response.json())["error"]


async def test_uptimerobot_query_string_with_token_in_the_path(hooks: tuple[Any, Any]) -> None:
    client, services = hooks
    response = await client.get(f"/hooks/uptimerobot/{SECRET}", params={
        "monitorID": "797741235", "monitorURL": "https://api.example.com/health", "monitorFriendlyName": "api health",
        "alertType": "1", "alertTypeFriendlyName": "Down", "alertDetails": "HTTP 503", "alertDateTime": "1732180512"})
    assert response.status == 202
    assert await services.events.length() == 1


async def test_grafana_basic_auth_style_header_is_refused_without_hmac(hooks: tuple[Any, Any]) -> None:
    client, _ = hooks
    body = (PAYLOADS / "grafana/firing_two_alerts.json").read_bytes()
    basic = base64.b64encode(b"user:pass").decode()
    status, doc = await post(client, "grafana", body, {"Content-Type": "application/json",
                                                       "Authorization": f"Basic {basic}"})
    assert status == 401 and doc["field"] == "X-Grafana-Alerting-Signature"
