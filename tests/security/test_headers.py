"""Security headers on every kind of response: API JSON (success and each error), webhooks, the public status page,
health and metrics, and the dashboard (pages, redirects, stylesheet)."""

from __future__ import annotations

import pytest

from tests.fuzz.world import READ_TOKEN, LiveApp

READ = ("Authorization", f"Bearer {READ_TOKEN}")
CASES = [
    ("GET", "/api/v1/incidents", [READ], None, 200),
    ("GET", "/api/v1/incidents/1", [READ], None, 200),
    ("GET", "/api/v1/incidents/1/postmortem.md", [READ], None, 200),
    ("GET", "/api/v1/incidents", [], None, 401),
    ("GET", "/api/v1/incidents/nope", [READ], None, 404),
    ("PUT", "/api/v1/incidents", [READ], None, 405),
    ("GET", "/api/v1/openapi.json", [], None, 200),
    ("POST", "/hooks/sentry", [("Content-Type", "application/json")], b"{}", 401),
    ("POST", "/hooks/sentry", [("Content-Type", "application/json")], b"x" * 70000, 413),
    ("POST", "/hooks/nope", [("Content-Type", "application/json")], b"{}", 404),
    ("GET", "/status", [], None, 200),
    ("GET", "/status.json", [], None, 200),
    ("GET", "/healthz", [], None, 200),
    ("GET", "/readyz", [], None, 200),
    ("GET", "/metrics", [], None, 200),
    ("GET", "/nowhere", [], None, 404),
    ("GET", "/ui/login", [], None, 200),
    ("GET", "/ui/incidents", [], None, 303),
    ("GET", "/ui/incidents", [READ], None, 200),
    ("GET", "/ui/static/ui.css", [], None, 200),
]


@pytest.mark.parametrize(("method", "path", "headers", "body", "status"), CASES,
                         ids=[f"{m} {p} {s}" for m, p, _, _, s in CASES])
def test_security_headers(live: LiveApp, incident_id: str, method: str, path: str, headers: list[tuple[str, str]],
                          body: bytes | None, status: int) -> None:
    reply = live.request(method, path, body=body, headers=headers)
    assert reply.status == status, reply
    h = reply.headers
    assert h.get("x-content-type-options") == "nosniff"
    assert h.get("x-frame-options") == "DENY"
    # the dashboard keeps same-origin referrers (its CSRF check falls back to Referer); nothing leaves the site
    assert h.get("referrer-policy") in (("no-referrer", "same-origin") if path.startswith("/ui") else ("no-referrer",))
    csp = h.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, csp
    assert "unsafe-eval" not in csp and "script-src" not in csp  # no script runs on any page
    if path.startswith("/api/"):
        assert h.get("cache-control") == "no-store"
    if path == "/status":  # its inline stylesheet is the one thing allowed
        assert "style-src 'unsafe-inline'" in csp
