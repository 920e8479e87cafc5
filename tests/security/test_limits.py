"""What a request may not be: larger than server.max_body_bytes (413), compressed (415), nested past what a parser
can take (400), a form aiohttp cannot read (400). Each answers JSON naming the problem, and the connection stays
usable or is closed cleanly."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json

import pytest

from tests.fuzz.world import (
    ALERTMANAGER_TOKEN,
    GRAFANA_SECRET,
    PAGERDUTY_SECRET,
    SENTRY_SECRET,
    WRITE_TOKEN,
    LiveApp,
    Reply,
    assert_well_formed,
)

LIMIT = 65536  # server.max_body_bytes in the world's responder.yaml
WRITE = ("Authorization", f"Bearer {WRITE_TOKEN}")
JSON = ("Content-Type", "application/json")
FORM = ("Content-Type", "application/x-www-form-urlencoded")


def hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def problem(reply: Reply, status: int, field: str) -> str:
    assert_well_formed(reply)
    doc = reply.json()
    assert (reply.status, doc["field"]) == (status, field), (reply.status, doc)
    return str(doc["error"])


@pytest.mark.parametrize(("path", "headers"), [
    ("/hooks/sentry", [JSON]),
    ("/hooks/grafana", [JSON]),
    ("/hooks/alertmanager", [JSON]),
    ("/hooks/uptimerobot", [FORM]),
    ("/hooks/pagerduty", [JSON]),
    ("/slack/commands", [FORM]),
    ("/slack/interactions", [FORM]),
    ("/api/v1/silences", [JSON, WRITE]),
    ("/api/v1/incidents/1/resolve", [JSON, WRITE]),
    ("/api/v1/incidents/1/run", [JSON, WRITE]),
    ("/ui/login", [FORM]),
])
def test_a_body_over_the_limit_is_413_json(live: LiveApp, path: str, headers: list[tuple[str, str]]) -> None:
    body = b'{"pad": "' + b"x" * LIMIT + b'"}'
    if ("Content-Type", "application/x-www-form-urlencoded") in headers:
        body = b"pad=" + b"x" * (LIMIT + 10)
    assert str(LIMIT) in problem(live.request("POST", path, body=body, headers=headers), 413, "body")
    assert live.request("GET", "/healthz").status == 200  # the connection (or the next one) still works


def test_a_body_at_the_limit_is_read(live: LiveApp) -> None:
    body = json.dumps({"matchers": "service=api", "duration": "1h", "comment": "x" * 1900}).encode()
    body += b" " * (LIMIT - len(body))
    assert live.request("POST", "/api/v1/silences", body=body, headers=[JSON, WRITE]).status == 201


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "x-gzip"])
def test_compressed_bodies_are_refused_415(live: LiveApp, encoding: str) -> None:
    """No sender compresses webhooks; refusing them leaves no decompression (or zip bomb) in front of the app.
    (Before, a gzip header over a plain body was a 500, and br/zstd a plain-text 400 from the HTTP parser.)"""
    body = gzip.compress(b'{"alerts": []}') if encoding == "gzip" else b'{"alerts": []}'
    reply = live.request("POST", "/hooks/grafana", body=body, headers=[JSON, ("Content-Encoding", encoding)])
    assert encoding in problem(reply, 415, "Content-Encoding")
    reply = live.request("POST", "/api/v1/silences", body=body, headers=[JSON, WRITE, ("Content-Encoding", encoding)])
    problem(reply, 415, "Content-Encoding")
    assert live.request("GET", "/healthz").status == 200


def test_identity_encoding_is_fine(live: LiveApp) -> None:
    body = b'{"matchers": "service=api", "duration": "1h"}'
    reply = live.request("POST", "/api/v1/silences", body=body, headers=[JSON, WRITE, ("Content-Encoding", "identity")])
    assert reply.status == 201


@pytest.mark.parametrize("path", ["/hooks/sentry", "/hooks/grafana", "/hooks/alertmanager", "/hooks/pagerduty",
                                  "/api/v1/silences", "/api/v1/incidents/1/ack", "/api/v1/incidents/1/run",
                                  "/api/v1/silences/x"])
@pytest.mark.parametrize("body", [b"[" * 30000 + b"]" * 30000, b'{"a":' * 6000 + b"1" + b"}" * 6000])
def test_json_nested_past_the_parser_is_400(live: LiveApp, path: str, body: bytes) -> None:
    """json.loads raises RecursionError (not ValueError) on deep nesting: it was a 500 everywhere."""
    headers = [JSON, ("Sentry-Hook-Resource", "metric_alert"),
               ("Sentry-Hook-Signature", hex_hmac(SENTRY_SECRET, body)),
               ("X-Grafana-Alerting-Signature", hex_hmac(GRAFANA_SECRET, body)),
               ("X-PagerDuty-Signature", "v1=" + hex_hmac(PAGERDUTY_SECRET, body)),
               ("Authorization", f"Bearer {ALERTMANAGER_TOKEN if path == '/hooks/alertmanager' else WRITE_TOKEN}")]
    method = "DELETE" if path == "/api/v1/silences/x" else "POST"
    assert "nested too deeply" in problem(live.request(method, path, body=body, headers=headers), 400, "body")


@pytest.mark.parametrize(("content_type", "body", "field"), [
    ("multipart/form-data", b"x", "body"),  # no boundary
    ("multipart/form-data; boundary=x", b"garbage", "body"),
    ("multipart/form-data; boundary=x", b"--x\r\nfoo\r\n\r\nbar\r\n--x--\r\n", "body"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\nbar\r\n--x--\r\n", "body"),
    ("application/x-www-form-urlencoded", b"\xff\xfe=%ff", "body"),
    ("application/x-www-form-urlencoded; charset=bogus", b"a=b", "body"),
])
@pytest.mark.parametrize("path", ["/ui/login", "/ui/logout", "/ui/silences", "/ui/incidents/1/ack"])
def test_dashboard_forms_aiohttp_cannot_read_are_400(live: LiveApp, path: str, content_type: str, body: bytes,
                                                     field: str) -> None:
    """request.post() raises ValueError, LookupError or an HTTP parser error on these: each was a 500."""
    reply = live.request("POST", path, body=body, headers=[("Content-Type", content_type), WRITE])
    if reply.status != 400:  # refused before the form is read (no write session), as HTML: fine
        assert reply.status in (401, 403), reply
        return
    problem(reply, 400, field)


def test_the_http_parser_limits_hold(live: LiveApp) -> None:
    """A request line or header over 8190 bytes, a repeated Content-Type or a malformed chunked body is refused by
    aiohttp's HTTP parser before any middleware: a 400 in plain text (the one place where an error is not JSON: the
    request never reached the application), never a 5xx, and the server goes on."""
    for path, headers in [("/api/v1/incidents?x=" + "a" * 9000, []),
                          ("/healthz", [("X-Long", "a" * 9000)]),
                          ("/hooks/grafana", [JSON, ("Content-Type", "text/plain")])]:
        live.reset()
        reply = live.request("GET" if "hooks" not in path else "POST", path, body=b"{}" if "hooks" in path else None,
                             headers=headers)
        assert reply.status == 400, (path, reply)
    live.reset()
    # a malformed chunked body: aiohttp answers 400 or, seen under load on a 2-core machine, leaves that one
    # connection without an answer (noted in the closing note); never a 5xx, and the server goes on either way
    try:
        chunked = live.request("POST", "/hooks/sentry", body=b"5\r\nhello\r\nZZ\r\nxx\r\n0\r\n\r\n",
                               headers=[JSON, ("Transfer-Encoding", "chunked")])
        assert chunked.status == 400, chunked
    except TimeoutError:
        pass
    live.reset()
    assert live.request("GET", "/healthz").status == 200
