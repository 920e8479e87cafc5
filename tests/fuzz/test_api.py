"""Fuzz every API route (and the public and dashboard pages) with random and mutated bodies, query strings, path
parameters, tokens and content types: never a 5xx; every 4xx of the API is JSON naming the problem; a 2xx is the
documented content type (JSON parses)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ
from tests.fuzz.strategies import (
    CONTENT_TYPES,
    HEADER_VALUES,
    extra_headers,
    json_body,
    json_value,
    mutated,
    text,
    url_text,
)
from tests.fuzz.world import READ_TOKEN, WRITE_TOKEN, LiveApp, assert_well_formed

Headers = list[tuple[str, "str | bytes"]]

CHANGE = {"actor": "alice", "note": "rolled back by hand"}
RUN = {"playbook": "notify", "dry_run": True, "actor": "alice"}
SILENCES = [
    {"matchers": "service=api", "duration": "1h", "comment": "deploy"},
    {"matchers": {"service": "api", "name": {"regex": "err.*"}}, "starts_at": "2026-01-01T01:00:00Z",
     "ends_at": "2026-01-01T02:00:00Z", "created_by": "alice"},
    {"matchers": 'service=batch name=~"nightly.*"',
     "recurrence": {"days": ["sat", "sunday"], "start": "01:00", "end": "02:00", "timezone": "Europe/Berlin"}},
]
EXPIRE = {"actor": "bob"}

#: (method, path template, query parameters it reads, realistic bodies, 2xx content type)
ENDPOINTS: list[tuple[str, str, tuple[str, ...], list[Any], str]] = [
    ("GET", "/api/v1/incidents", ("state", "limit"), [], "application/json"),
    ("GET", "/api/v1/incidents/{id}", (), [], "application/json"),
    ("GET", "/api/v1/incidents/{id}/postmortem.md", (), [], "text/markdown"),
    ("POST", "/api/v1/incidents/{id}/ack", (), [CHANGE, {}], "application/json"),
    ("POST", "/api/v1/incidents/{id}/resolve", (), [CHANGE], "application/json"),
    ("POST", "/api/v1/incidents/{id}/unfreeze", (), [CHANGE], "application/json"),
    ("POST", "/api/v1/incidents/{id}/run", (), [RUN], "application/json"),
    ("GET", "/api/v1/silences", ("state",), [], "application/json"),
    ("POST", "/api/v1/silences", (), SILENCES, "application/json"),
    ("GET", "/api/v1/silences/{id}", (), [], "application/json"),
    ("DELETE", "/api/v1/silences/{id}", (), [EXPIRE, {}], "application/json"),
    ("GET", "/api/v1/probes", ("results",), [], "application/json"),
    ("GET", "/api/v1/probes/{id}", ("results",), [], "application/json"),
    ("GET", "/api/v1/audit", ("limit", "user", "incident"), [], "application/json"),
    ("GET", "/api/v1/openapi.json", (), [], "application/json"),
    ("GET", "/status.json", (), [], "application/json"),
    ("GET", "/status", (), [], "text/html"),
    ("GET", "/healthz", (), [], "application/json"),
    ("GET", "/readyz", (), [], "application/json"),
    ("GET", "/metrics", (), [], "text/plain"),
]
#: the dashboard: HTML for people, so only "never a 5xx" (its 4xx are HTML pages saying what is wrong)
DASHBOARD: list[tuple[str, str, tuple[str, ...]]] = [
    ("GET", "/ui/incidents", ("state", "severity", "service", "q")),
    ("GET", "/ui/incidents/{id}", ()),
    ("POST", "/ui/incidents/{id}/ack", ()),
    ("POST", "/ui/incidents/{id}/run", ()),
    ("GET", "/ui/silences", ("show",)),
    ("POST", "/ui/silences", ()),
    ("POST", "/ui/silences/{id}/expire", ()),
    ("GET", "/ui/probes", ()),
    ("POST", "/ui/login", ("next",)),
]
KNOWN_IDS = ["1", "2", "weekly-maintenance", "api-health", "notify"]


@st.composite
def path_id(draw: st.DrawFn) -> str:
    raw = draw(st.sampled_from(KNOWN_IDS) | url_text | st.sampled_from(["..", "%2F", "1/../1", " 1", "1.0", "-1"]))
    return quote(raw, safe="") or "x"


@st.composite
def query(draw: st.DrawFn, names: tuple[str, ...]) -> str:
    values = st.one_of(url_text, st.sampled_from(["", "1", "0", "-5", "99999999999999999999", "1.5", "all", "triggered",
                                              "active,expired", "resolved", "critical", "expired,,", "true"]))
    chosen = draw(st.dictionaries(st.sampled_from([*names, "x", "token"]) if names else st.just("x"), values,
                                  max_size=3))
    return ("?" + urlencode(chosen)) if chosen else ""


@st.composite
def token_headers(draw: st.DrawFn) -> Headers:
    choice = draw(st.sampled_from(["read", "write", "write", "none", "garbage", "duplicate", "basic", "lower"]))
    if choice == "read":
        return [("Authorization", f"Bearer {READ_TOKEN}")]
    if choice == "write":
        return [("Authorization", f"Bearer {WRITE_TOKEN}")]
    if choice == "none":
        return []
    if choice == "garbage":
        return [("Authorization", draw(HEADER_VALUES))]
    if choice == "duplicate":
        return [("Authorization", f"Bearer {READ_TOKEN}"), ("Authorization", f"Bearer {WRITE_TOKEN}")]
    if choice == "basic":
        return [("Authorization", "Basic d3JpdGU6dG9rZW4=")]
    return [("authorization", f"bearer {WRITE_TOKEN}")]


@st.composite
def body(draw: st.DrawFn, realistic: list[Any]) -> bytes | None:
    if not realistic and draw(st.booleans()):
        return None
    doc = draw(st.one_of(st.sampled_from(realistic), mutated(draw(st.sampled_from(realistic))), json_value)
               if realistic else json_value)
    return draw(json_body(doc)) if draw(st.integers(0, 9)) else draw(st.binary(max_size=64))


@st.composite
def api_request(draw: st.DrawFn, method: str, template: str, names: tuple[str, ...],
                realistic: list[Any]) -> tuple[str, str, bytes | None, Headers]:
    path = template.replace("{id}", draw(path_id())) + draw(query(names))
    content_type = draw(st.sampled_from(["application/json"] * 12 + CONTENT_TYPES))
    headers = [*draw(token_headers()), ("Content-Type", content_type),
               *(draw(extra_headers()) if draw(st.integers(0, 3)) == 0 else [])]
    return method, path, draw(body(realistic)), headers


@pytest.mark.parametrize(("method", "template", "names", "realistic", "content_type"), ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, *_ in ENDPOINTS])
def test_api_fuzz(live: LiveApp, incident_id: str, method: str, template: str, names: tuple[str, ...],
                  realistic: list[Any], content_type: str) -> None:
    @FUZZ
    @given(api_request(method, template, names, realistic))
    def run(case: tuple[str, str, bytes | None, Headers]) -> None:
        verb, path, data, headers = case
        reply = live.request(verb, path, body=data, headers=headers)
        event(f"{reply.status}")
        what = f"{verb} {path} {headers} {data[:200] if data else data!r}"
        assert_well_formed(reply, what)
        if 200 <= reply.status < 300:
            assert reply.content_type == content_type, f"{what}: {reply.content_type}"
            if content_type == "application/json":
                assert isinstance(reply.json(), dict), what

    run()


@pytest.mark.parametrize(("method", "template", "names"), DASHBOARD, ids=[f"{m} {p}" for m, p, _ in DASHBOARD])
def test_dashboard_fuzz(live: LiveApp, incident_id: str, method: str, template: str, names: tuple[str, ...]) -> None:
    @FUZZ
    @given(api_request(method, template, names, []),
           st.dictionaries(st.sampled_from(["csrf", "token", "name", "next", "matchers", "duration", "comment",
                                            "playbook", "dry_run", "note"]), text, max_size=4))
    def run(case: tuple[str, str, bytes | None, Headers], form: dict[str, str]) -> None:
        verb, path, data, headers = case
        if verb == "POST" and form:
            data = urlencode(form).encode()
            headers = [h for h in headers if h[0] != "Content-Type"] + [
                ("Content-Type", "application/x-www-form-urlencoded")]
        reply = live.request(verb, path, body=data, headers=headers)
        event(f"{reply.status}")
        assert reply.status < 500, f"{verb} {path} {headers} {data!r}: {reply.status} {reply.body[:300]!r}"

    run()


@given(path=st.text(min_size=1, max_size=40), method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]))
@FUZZ
def test_unknown_routes_are_json_404_or_405(live: LiveApp, path: str, method: str) -> None:
    reply = live.request(method, "/api/v1/" + quote(path, safe="/"),
                         headers=[("Authorization", f"Bearer {WRITE_TOKEN}")])
    assert_well_formed(reply, f"{method} /api/v1/{path}")
    assert reply.status < 300 or reply.status in (400, 401, 404, 405, 409, 415, 422), reply.status


def test_realistic_bodies_are_accepted(live: LiveApp, incident_id: str) -> None:
    """The fuzzers start from bodies the API takes."""
    write = [("Authorization", f"Bearer {WRITE_TOKEN}"), ("Content-Type", "application/json")]
    for spec in SILENCES:
        reply = live.request("POST", "/api/v1/silences", body=json.dumps(spec).encode(), headers=write)
        assert reply.status == 201, reply.body
    reply = live.request("POST", f"/api/v1/incidents/{incident_id}/run", body=json.dumps(RUN).encode(), headers=write)
    assert reply.status == 202, reply.body
