"""API tokens: on every protected route (taken from the OpenAPI document, so a new route is covered when it is
documented) no token and a wrong token are 401; the read token reads but cannot write; the write token does both.
Without a write token configured writes are off; without a read token reads are open."""

from __future__ import annotations

from typing import Any

import pytest

from responder.api.openapi import openapi_document
from tests.fuzz.world import READ_TOKEN, WRITE_TOKEN, LiveApp, Reply, assert_well_formed

DOC = openapi_document()
PUBLIC = {"/healthz", "/readyz", "/metrics", "/status", "/status.json", "/api/v1/openapi.json"}


def operations(scope: str) -> list[tuple[str, str]]:
    """(METHOD, path) of every /api/v1 operation whose security needs exactly the given scope."""
    out = []
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation or not path.startswith("/api/v1"):
                continue
            schemes = {name for requirement in operation.get("security", []) for name in requirement}
            if not operation.get("security") or {} in operation["security"]:
                continue
            needs = "read" if "readToken" in schemes else "write"
            if needs == scope:
                out.append((method.upper(), path))
    return sorted(out)


READS, WRITES = operations("read"), operations("write")


def concrete(path: str) -> str:
    return (path.replace("/incidents/{id}", "/incidents/1").replace("/silences/{id}", "/silences/weekly-maintenance")
            .replace("/probes/{id}", "/probes/api-health"))


def call(live: LiveApp, method: str, path: str, token: str | bytes | None) -> Reply:
    headers: list[tuple[str, Any]] = [("Content-Type", "application/json")]
    if token is not None:
        headers.append(("Authorization", token if isinstance(token, bytes) else f"Bearer {token}"))
    body = b'{"playbook": "notify", "dry_run": true}' if path.endswith("/run") else (
        b'{"matchers": "service=api", "duration": "1h"}' if method == "POST" and path.endswith("/silences") else None)
    return live.request(method, concrete(path), body=body, headers=headers)


def unauthorized(reply: Reply) -> None:
    assert_well_formed(reply)
    assert reply.status == 401 and reply.json()["field"] == "Authorization", reply


def test_the_document_marks_every_api_route_with_a_scope() -> None:
    assert len(READS) >= 8 and len(WRITES) >= 6
    assert ("GET", "/api/v1/incidents") in READS and ("DELETE", "/api/v1/silences/{id}") in WRITES


@pytest.mark.parametrize(("method", "path"), READS + WRITES)
@pytest.mark.parametrize("token", [None, "wrong-token", b"Basic " + READ_TOKEN.encode(), READ_TOKEN + "x"])
def test_no_or_a_wrong_token_is_401(live: LiveApp, incident_id: str, method: str, path: str,
                                    token: str | bytes | None) -> None:
    unauthorized(call(live, method, path, token))


@pytest.mark.parametrize(("method", "path"), READS)
def test_the_read_token_reads(live: LiveApp, incident_id: str, method: str, path: str) -> None:
    reply = call(live, method, path, READ_TOKEN)
    assert reply.status == 200, (path, reply)
    assert call(live, method, path, WRITE_TOKEN).status == 200  # the write token reads too


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_the_read_token_cannot_write_and_the_write_token_can(live: LiveApp, incident_id: str, method: str,
                                                             path: str) -> None:
    unauthorized(call(live, method, path, READ_TOKEN))
    reply = call(live, method, path, WRITE_TOKEN)
    assert_well_formed(reply)
    assert reply.status != 401, (path, reply)


@pytest.mark.parametrize("path", sorted(PUBLIC))
def test_public_routes_need_no_token(live: LiveApp, path: str) -> None:
    assert live.request("GET", path).status == 200


async def test_writes_are_off_without_a_write_token_and_reads_open_without_a_read_token(
        make_config: Any, make_app: Any) -> None:
    client, _ = await make_app(make_config({}))
    for method, path in WRITES:
        response = await client.request(method, concrete(path), json={})
        body = await response.json()
        assert response.status == 401 and "writes are disabled" in body["error"], (path, body)
    for method, path in READS:
        response = await client.request(method, concrete(path))
        assert response.status in (200, 404), path  # open; 404: nothing with that id in this empty world
