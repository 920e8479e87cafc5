"""Webhook and Slack authentication: constant-time comparisons, replay windows where the vendor signs a timestamp
(Grafana, Slack), deduplication where it does not (Sentry, PagerDuty), and hostile header bytes refused as 401 JSON
(each of these was a 500 before)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import PAYLOADS
from tests.fuzz.world import (
    ALERTMANAGER_TOKEN,
    GRAFANA_SECRET,
    PAGERDUTY_SECRET,
    READ_TOKEN,
    SENTRY_SECRET,
    SLACK_SIGNING_SECRET,
    UPTIMEROBOT_TOKEN,
    LiveApp,
    Reply,
    assert_well_formed,
)

NOW = 1767225600  # the FakeClock's 2026-01-01T00:00:00Z
JSON = ("Content-Type", "application/json")
FORM = ("Content-Type", "application/x-www-form-urlencoded")


def hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def refused(reply: Reply, field: str, status: int = 401) -> str:
    assert_well_formed(reply)
    doc = reply.json()
    assert (reply.status, doc["field"]) == (status, field), (reply.status, doc)
    return str(doc["error"])


def grafana(live: LiveApp, body: bytes, timestamp: str | bytes, signed_with: str | None = None) -> Reply:
    stamp = signed_with if signed_with is not None else (timestamp.decode() if isinstance(timestamp, bytes)
                                                         else timestamp)
    signature = hex_hmac(GRAFANA_SECRET, stamp.encode() + b":" + body)
    return live.request("POST", "/hooks/grafana", body=body, headers=[
        JSON, ("X-Grafana-Alerting-Timestamp", timestamp), ("X-Grafana-Alerting-Signature", signature)])


def test_grafana_hmac_timestamps_outside_the_window_are_replays(live: LiveApp) -> None:
    body = (PAYLOADS / "grafana" / "firing_two_alerts.json").read_bytes()
    first = grafana(live, body, str(NOW - 299))
    assert first.status == 202 and first.json()["accepted"] == 2
    again = grafana(live, body, str(NOW - 299))  # inside the window: the same delivery, recognised
    assert again.status == 202 and again.json()["accepted"] == 0 and len(again.json()["duplicates"]) == 2
    for stale in (NOW - 301, NOW + 301, 0):
        assert "replay refused" in refused(grafana(live, body, str(stale)), "X-Grafana-Alerting-Timestamp")
    # the timestamp is signed: moving it into the window breaks the signature
    refused(grafana(live, body, str(NOW), signed_with=str(NOW - 3600)), "X-Grafana-Alerting-Signature")


@pytest.mark.parametrize("timestamp", ["²³", "١٧٦٧٢٢٥٦٠٠", "9" * 5000, "-1", "1e9", ""])
def test_grafana_malformed_timestamps_are_401_not_500(live: LiveApp, timestamp: str) -> None:
    """'²³' and Arabic-Indic digits pass str.isdigit() but not int(); 5000 digits exceed int()'s limit: were 500s."""
    body = (PAYLOADS / "grafana" / "resolved.json").read_bytes()
    reply = grafana(live, body, timestamp.encode())
    assert "Unix seconds" in refused(reply, "X-Grafana-Alerting-Timestamp")


def sentry(live: LiveApp, body: bytes, signature: str | bytes) -> Reply:
    return live.request("POST", "/hooks/sentry", body=body, headers=[
        JSON, ("Sentry-Hook-Resource", "metric_alert"), ("Sentry-Hook-Signature", signature)])


def pagerduty(live: LiveApp, body: bytes, signature: str | bytes) -> Reply:
    return live.request("POST", "/hooks/pagerduty", body=body, headers=[JSON, ("X-PagerDuty-Signature", signature)])


def test_sentry_and_pagerduty_sign_no_timestamp_so_a_replay_is_a_duplicate(live: LiveApp) -> None:
    """Neither vendor signs a timestamp (Sentry-Hook-Timestamp is not covered by the signature), so no window can
    be enforced; a replayed delivery is recognised by its delivery id and adds nothing."""
    body = (PAYLOADS / "sentry" / "metric_alert_critical.json").read_bytes()
    first = sentry(live, body, hex_hmac(SENTRY_SECRET, body))
    replay = sentry(live, body, hex_hmac(SENTRY_SECRET, body))
    assert first.status == replay.status == 202
    assert replay.json()["accepted"] == 0 and replay.json()["duplicates"] == first.json()["event_ids"]
    body = (PAYLOADS / "pagerduty" / "incident_triggered.json").read_bytes()
    first = pagerduty(live, body, f"v1={hex_hmac(PAGERDUTY_SECRET, body)}")
    replay = pagerduty(live, body, f"v1={hex_hmac(PAGERDUTY_SECRET, body)}")
    assert first.status == replay.status == 202
    assert replay.json()["accepted"] == 0 and replay.json()["duplicates"] == first.json()["event_ids"]
    # a signature over another body does not carry over
    refused(sentry(live, body + b" ", hex_hmac(SENTRY_SECRET, body)), "Sentry-Hook-Signature")


def slack(live: LiveApp, body: bytes, timestamp: str | bytes, signature: str | bytes | None = None) -> Reply:
    stamp = timestamp.decode(errors="replace") if isinstance(timestamp, bytes) else timestamp
    if signature is None:
        signature = "v0=" + hex_hmac(SLACK_SIGNING_SECRET, f"v0:{stamp}:".encode() + body)
    return live.request("POST", "/slack/commands", body=body, headers=[
        FORM, ("X-Slack-Request-Timestamp", timestamp), ("X-Slack-Signature", signature)])


def command(text: str, nonce: str, response_url: str = "http://127.0.0.1:9/response") -> bytes:
    """A slash command; `help` answers at once, so nothing is posted to the response_url."""
    return urlencode({"command": "/incident", "text": text, "user_id": "U0DANA001", "user_name": "dana",
                      "channel_id": "C0INC0001", "response_url": response_url, "trigger_id": nonce}).encode()


def test_slack_replays_and_stale_requests_are_refused(live: LiveApp) -> None:
    body = command("help", "replay-1")
    assert slack(live, body, str(NOW)).status == 200
    assert "replayed" in refused(slack(live, body, str(NOW)), "X-Slack-Signature")
    assert "stale" in refused(slack(live, command("help", "replay-2"), str(NOW - 301)), "X-Slack-Request-Timestamp")
    assert "stale" in refused(slack(live, command("help", "replay-3"), str(NOW + 301)), "X-Slack-Request-Timestamp")
    assert slack(live, command("help", "replay-4"), str(NOW - 299)).status == 200


@pytest.mark.parametrize(("timestamp", "signature", "field"), [
    (str(NOW), "²³".encode(), "X-Slack-Signature"),  # hmac.compare_digest raised TypeError on non-ASCII: was 500
    (str(NOW), b"v0=\xff\xfe", "X-Slack-Signature"),
    ("9" * 5000, "v0=00", "X-Slack-Request-Timestamp"),  # int() raised past 4300 digits: was 500
    ("١٧٦٧٢٢٥٦٠٠".encode(), "v0=00", "X-Slack-Request-Timestamp"),
])
def test_slack_hostile_headers_are_401(live: LiveApp, timestamp: str | bytes, signature: bytes | str,
                                       field: str) -> None:
    refused(slack(live, command("help", f"hostile-{field}-{len(timestamp)}"), timestamp, signature), field)


#: a header value that is not UTF-8 reaches the app as a surrogate escape; encoding it for the comparison raised
#: UnicodeEncodeError (a 500) in every verifier and in the API's bearer check
HOSTILE = b"\x80\xff"


@pytest.mark.parametrize(("method", "path", "header", "field"), [
    ("POST", "/hooks/sentry", "Sentry-Hook-Signature", "Sentry-Hook-Signature"),
    ("POST", "/hooks/grafana", "X-Grafana-Alerting-Signature", "X-Grafana-Alerting-Signature"),
    ("POST", "/hooks/alertmanager", "Authorization", "Authorization"),
    ("POST", "/hooks/uptimerobot", "X-Responder-Token", "token"),
    ("POST", "/hooks/pagerduty", "X-PagerDuty-Signature", "X-PagerDuty-Signature"),
    ("GET", "/api/v1/incidents", "Authorization", "Authorization"),
])
def test_non_utf8_credentials_are_401(live: LiveApp, method: str, path: str, header: str, field: str) -> None:
    value = {"Authorization": b"Bearer " + HOSTILE, "X-PagerDuty-Signature": b"v1=" + HOSTILE}.get(header, HOSTILE)
    body = b'{"alerts": []}' if method == "POST" else None
    refused(live.request(method, path, body=body, headers=[JSON, (header, value)]), field)


@pytest.fixture
def compare_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Any, Any]]]:
    calls: list[tuple[Any, Any]] = []
    original = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    yield calls


@pytest.mark.parametrize(("method", "path", "headers", "offered"), [
    ("POST", "/hooks/sentry", [("Sentry-Hook-Signature", "ab" * 32)], "ab" * 32),
    ("POST", "/hooks/grafana", [("X-Grafana-Alerting-Signature", "cd" * 32)], "cd" * 32),
    ("POST", "/hooks/alertmanager", [("Authorization", "Bearer wrong-alertmanager")], "wrong-alertmanager"),
    ("POST", "/hooks/uptimerobot", [("X-Responder-Token", "wrong-uptimerobot")], "wrong-uptimerobot"),
    ("POST", "/hooks/pagerduty", [("X-PagerDuty-Signature", "v1=" + "ef" * 32)], "ef" * 32),
    ("POST", "/slack/commands", [("X-Slack-Request-Timestamp", str(NOW)), ("X-Slack-Signature", "v0=" + "12" * 32),
                                 FORM], "v0=" + "12" * 32),
    ("GET", "/api/v1/incidents", [("Authorization", "Bearer wrong-api-token")], "wrong-api-token"),
])
def test_credentials_are_compared_in_constant_time(live: LiveApp, compare_calls: list[tuple[Any, Any]], method: str,
                                                   path: str, headers: list[tuple[str, str]], offered: str) -> None:
    """Every check of an offered signature or token goes through hmac.compare_digest (no == on secrets)."""
    body = b'{"alerts": []}' if method == "POST" else None
    content_type = [] if any(name == "Content-Type" for name, _ in headers) else [JSON]
    reply = live.request(method, path, body=body, headers=[*content_type, *headers])
    assert reply.status == 401, reply.body
    offered_bytes = offered.encode()
    assert any(offered in (a, b) or offered_bytes in (a, b) for a, b in compare_calls), compare_calls


def test_the_secrets_in_use_are_the_configured_ones(live: LiveApp) -> None:
    """Guards the tests above: with the right credentials, each source accepts."""
    body = json.dumps({"monitorID": "1", "alertType": "1", "monitorFriendlyName": "m"}).encode()
    assert live.request("POST", "/hooks/uptimerobot", body=body,
                        headers=[JSON, ("X-Responder-Token", UPTIMEROBOT_TOKEN)]).status == 202
    body = (PAYLOADS / "alertmanager" / "firing.json").read_bytes()
    assert live.request("POST", "/hooks/alertmanager", body=body,
                        headers=[JSON, ("Authorization", f"Bearer {ALERTMANAGER_TOKEN}")]).status == 202
    assert live.request("GET", "/api/v1/incidents", headers=[("Authorization", f"Bearer {READ_TOKEN}")]).status == 200
