"""Fuzz every /hooks/{source} with its realistic payloads mutated, hostile bodies and random or broken headers.

Whatever arrives: never a 5xx, every 4xx is JSON naming the problem, a 2xx is the documented 202 JSON. Half the
examples carry a valid signature over the (mutated) body, so the parsers are reached, not only the verifiers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import PAYLOADS
from tests.fuzz.conftest import FUZZ
from tests.fuzz.strategies import CONTENT_TYPES, HEADER_VALUES, extra_headers, json_body, json_value, mutated
from tests.fuzz.world import (
    ALERTMANAGER_TOKEN,
    GRAFANA_SECRET,
    PAGERDUTY_SECRET,
    SENTRY_SECRET,
    UPTIMEROBOT_TOKEN,
    LiveApp,
    Reply,
    assert_well_formed,
)

Headers = list[tuple[str, "str | bytes"]]
SOURCES = ("sentry", "grafana", "alertmanager", "uptimerobot", "pagerduty")
PAYLOAD_FILES = {source: sorted((PAYLOADS / source).glob("*.json")) for source in SOURCES}
SENTRY_RESOURCES = {"metric": "metric_alert", "event": "event_alert", "issue": "issue", "installation": "installation"}


def hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def check(reply: Reply, what: str) -> None:
    assert_well_formed(reply, what)
    if 200 <= reply.status < 300:
        assert reply.status == 202 and reply.content_type == "application/json", what
        doc = reply.json()
        assert set(doc) == {"accepted", "event_ids", "duplicates"}, doc
        assert isinstance(doc["accepted"], int) and all(isinstance(e, str) for e in doc["event_ids"]), doc


@st.composite
def signature_headers(draw: st.DrawFn, name: str, valid: str) -> Headers:
    """The signature header valid, absent, garbage, duplicated or malformed."""
    mode = draw(st.sampled_from(["valid", "valid", "valid", "absent", "garbage", "duplicated", "upper", "spaced"]))
    if mode == "valid":
        return [(name, valid)]
    if mode == "absent":
        return []
    if mode == "garbage":
        return [(name, draw(HEADER_VALUES))]
    if mode == "duplicated":
        pair = [(name, valid), (name, draw(HEADER_VALUES))]
        return pair if draw(st.booleans()) else pair[::-1]
    if mode == "upper":
        return [(name, valid.upper())]
    return [(name, f"  {valid}  ")]


@st.composite
def content_type(draw: st.DrawFn, default: str = "application/json") -> Headers:
    choice = draw(st.sampled_from([default] * 16 + CONTENT_TYPES + [None]))
    return [] if choice is None else [("Content-Type", choice)]


@st.composite
def uptimerobot(draw: st.DrawFn, doc: Any, body: bytes,
                headers: Headers) -> tuple[str, str, bytes | None, Headers]:
    """UptimeRobot: JSON, form or the legacy GET; the token in a header, the query or the path."""
    method, path = "POST", "/hooks/uptimerobot"
    data: bytes | None = body
    encoding = draw(st.sampled_from(["json", "form", "get"]))
    fields = doc if isinstance(doc, dict) else {"x": doc}
    query: dict[str, str] = {}
    if encoding == "form":
        data = urlencode({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}).encode()
        headers = [("Content-Type", "application/x-www-form-urlencoded"),
                   *(h for h in headers if h[0] != "Content-Type")]
    elif encoding == "get":
        method, data = "GET", None
        # values cut short: aiohttp's parser refuses a request line over 8190 bytes before the app sees it
        query = {str(k)[:100]: (v if isinstance(v, str) else json.dumps(v))[:200] for k, v in fields.items()}
    where = draw(st.sampled_from(["header", "query", "path", "bearer", "none", "wrong"]))
    token = draw(st.sampled_from([UPTIMEROBOT_TOKEN] * 3) | st.text(max_size=20))
    header_token = token if token.isascii() and token.isprintable() else draw(HEADER_VALUES)
    if where == "header":
        headers.append(("X-Responder-Token", header_token))
    elif where == "bearer":
        headers.append(("Authorization", header_token if isinstance(header_token, bytes) else
                        f"Bearer {header_token}"))
    elif where == "query":
        query["token"] = token
    elif where == "path":
        path += "/" + quote(token, safe="") if token else ""
    elif where == "wrong":
        headers.append(("X-Responder-Token", "wrong"))
    if draw(st.booleans()):
        query["service"] = draw(st.text(max_size=20))
    if query:
        path += "?" + urlencode(query)
    return method, path, data, headers


@st.composite
def delivery(draw: st.DrawFn, source: str) -> tuple[str, str, bytes | None, Headers]:
    """(method, path, body, headers) for one delivery to `source`."""
    path_file = draw(st.sampled_from(PAYLOAD_FILES[source]))
    original = json.loads(path_file.read_text())
    doc = draw(st.one_of(st.just(original), mutated(original), json_value))
    body = draw(json_body(doc))
    headers: Headers = [*draw(content_type()), *(draw(extra_headers()) if draw(st.integers(0, 3)) == 0 else [])]
    method, path = "POST", f"/hooks/{source}"
    if source == "sentry":
        resource = next((r for prefix, r in SENTRY_RESOURCES.items() if path_file.name.startswith(prefix)), None)
        resource = draw(st.sampled_from([resource, resource, resource, None, "issue", "metric_alert", "comment"])
                        | HEADER_VALUES)
        if resource is not None:
            headers.append(("Sentry-Hook-Resource", resource))
        headers += draw(signature_headers("Sentry-Hook-Signature", hex_hmac(SENTRY_SECRET, body)))
    elif source == "grafana":
        timestamp = draw(st.sampled_from(["now", "now", None, "stale", "future"]) | HEADER_VALUES)
        now = 1767225600  # the FakeClock's 2026-01-01T00:00:00Z
        value = {"now": str(now), "stale": str(now - 301), "future": str(now + 301)}.get(timestamp, timestamp) \
            if isinstance(timestamp, str) else timestamp
        signed = body if value is None else (value if isinstance(value, bytes) else value.encode()) + b":" + body
        if value is not None:
            headers.append(("X-Grafana-Alerting-Timestamp", value))
        name = draw(st.sampled_from(["X-Grafana-Alerting-Signature", "X-Grafana-Alert-Signature"]))
        headers += draw(signature_headers(name, hex_hmac(GRAFANA_SECRET, signed)))
    elif source == "alertmanager":
        headers += draw(signature_headers("Authorization", f"Bearer {ALERTMANAGER_TOKEN}"))
    elif source == "pagerduty":
        valid = f"v1={hex_hmac(PAGERDUTY_SECRET, body)}"
        valid = draw(st.sampled_from([valid, valid, f"v1=deadbeef,{valid}", ",".join([valid] * 17)]))
        headers += draw(signature_headers("X-PagerDuty-Signature", valid))
    else:
        method, path, body, headers = draw(uptimerobot(doc, body, headers))
    return method, path, body, headers


@pytest.mark.parametrize("source", SOURCES)
def test_webhook_fuzz(live: LiveApp, source: str) -> None:
    @FUZZ
    @given(delivery(source))
    def run(case: tuple[str, str, bytes | None, Headers]) -> None:
        method, path, body, headers = case
        reply = live.request(method, path, body=body, headers=headers)
        check(reply, f"{method} {path} {headers} {body[:200] if body else body!r}")

    run()


@given(source=st.text(min_size=1, max_size=30) | st.sampled_from(["Sentry", "sentry ", "..", "%2e%2e", "slack"]),
       body=st.binary(max_size=200), method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS"]))
@FUZZ
def test_unknown_sources_and_methods(live: LiveApp, source: str, body: bytes, method: str) -> None:
    path = "/hooks/" + quote(source, safe="")
    reply = live.request(method, path, body=body or None, headers=[("Content-Type", "application/json")])
    check(reply, f"{method} {path}")


def test_a_realistic_delivery_of_every_payload_is_accepted(live: LiveApp) -> None:
    """The fuzzers' starting points are valid: each unmutated payload, validly signed, is a 202."""
    for source in SOURCES:
        for path_file in PAYLOAD_FILES[source]:
            body = path_file.read_bytes()
            headers: Headers = [("Content-Type", "application/json")]
            if source == "sentry":
                resource = next((r for p, r in SENTRY_RESOURCES.items() if path_file.name.startswith(p)), None)
                headers += [("Sentry-Hook-Signature", hex_hmac(SENTRY_SECRET, body))]
                headers += [("Sentry-Hook-Resource", resource)] if resource else []
            elif source == "grafana":
                headers += [("X-Grafana-Alerting-Signature", hex_hmac(GRAFANA_SECRET, body))]
            elif source == "alertmanager":
                headers += [("Authorization", f"Bearer {ALERTMANAGER_TOKEN}")]
            elif source == "pagerduty":
                headers += [("X-PagerDuty-Signature", f"v1={hex_hmac(PAGERDUTY_SECRET, body)}")]
            else:
                headers += [("X-Responder-Token", UPTIMEROBOT_TOKEN)]
            reply = live.request("POST", f"/hooks/{source}", body=body, headers=headers)
            assert reply.status == 202, (path_file.name, reply.body)
