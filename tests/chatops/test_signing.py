"""Slack request signing on /slack/commands and /slack/interactions: the real v0 algorithm, 401 JSON for every
way a request can be wrong (never a 500), 404 when no signing secret is configured."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chatops.conftest import CONFIG, DANA, FORM, SIGNING_SECRET, Chat, sign, signed_headers

PATHS = ("/slack/commands", "/slack/interactions")


def body_for(chat: Chat, path: str) -> bytes:
    if path == "/slack/commands":
        return chat.command_body("list")[0]
    return chat.click_body("incident_ack", "1")[0]


@pytest.mark.parametrize("path", PATHS)
async def test_a_correctly_signed_request_is_accepted(chat: Chat, make_config: Any, make_app: Any, path: str) -> None:
    await chat.start(make_config, make_app)
    response = await chat.post(path, body_for(chat, path))
    assert response.status == 200, await response.text()
    await chat.settle()


FULLWIDTH = "\uff11\uff17\uff16\uff17\uff12\uff12\uff15\uff16\uff10\uff10"  # digits, but not ASCII ones


def bad_headers(case: str, body: bytes, now: int) -> dict[str, str]:
    headers = signed_headers(body, now)
    if case == "wrong secret":
        return signed_headers(body, now, secret="not-the-signing-secret")
    if case in ("missing timestamp", "missing signature"):
        del headers["X-Slack-Request-Timestamp" if case == "missing timestamp" else "X-Slack-Signature"]
        return headers
    if case == "garbage signature":
        return {**headers, "X-Slack-Signature": "v0=zz"}
    timestamps: dict[str, str | int] = {"stale": now - 301, "future": now + 301, "malformed timestamp": "yesterday",
                                        "float timestamp": f"{now}.5", "non-ascii digits": FULLWIDTH}
    if case in timestamps:
        return signed_headers(body, timestamps[case])
    return {"Content-Type": FORM} if case == "no headers" else headers


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", ["wrong secret", "tampered body", "missing timestamp", "missing signature",
                                  "no headers", "stale", "future", "malformed timestamp", "float timestamp",
                                  "non-ascii digits", "garbage signature", "replayed"])
async def test_bad_signatures_are_401_json(chat: Chat, make_config: Any, make_app: Any, path: str, case: str) -> None:
    await chat.start(make_config, make_app)
    body = body_for(chat, path)
    headers = bad_headers(case, body, chat.now())
    if case == "tampered body":
        body = body.replace(b"list", b"lisx") if b"list" in body else body + b"&x=1"
    elif case == "replayed":
        first = await chat.client.post(path, data=body, headers=headers)
        assert first.status == 200
        await chat.settle()
    response = await chat.client.post(path, data=body, headers={k: v.encode("utf-8").decode("latin-1")
                                                                  for k, v in headers.items()})
    assert response.status == 401, (case, await response.text())
    error = await response.json()
    assert set(error) == {"error", "field"} and error["field"] in ("X-Slack-Signature", "X-Slack-Request-Timestamp")
    assert SIGNING_SECRET not in error["error"]
    if case in ("stale", "future"):
        assert "stale" in error["error"]
    if case == "replayed":
        assert "replayed" in error["error"]
    await chat.settle()


async def test_within_the_window_either_way_is_accepted(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    for offset in (-299, 299):
        body = chat.command_body("help")[0]
        response = await chat.post("/slack/commands", body, signed_headers(body, chat.now() + offset))
        assert response.status == 200, await response.text()


async def test_nothing_happens_before_the_signature_is_checked(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    incident = await chat.incident()
    body = chat.click_body("incident_ack", incident.id)[0]
    response = await chat.post("/slack/interactions", body, signed_headers(body, chat.now(), secret="wrong"))
    assert response.status == 401
    await chat.settle()
    assert (await chat.services.incidents.get(incident.id)).acknowledged_at is None
    assert await chat.audit() == []
    rejected = chat.services.consumer.metrics.webhooks_rejected.labels(source="slack", status="401")
    assert rejected._value.get() == 1


@pytest.mark.parametrize("path", PATHS)
async def test_wrong_content_type_is_415(chat: Chat, make_config: Any, make_app: Any, path: str) -> None:
    await chat.start(make_config, make_app)
    body = b'{"text": "list"}'
    headers = {**signed_headers(body, chat.now()), "Content-Type": "application/json"}
    response = await chat.post(path, body, headers)
    assert response.status == 415
    assert (await response.json())["field"] == "Content-Type"


@pytest.mark.parametrize("payload", [b"", b"payload=not-json", b"payload=%5B1%5D", b"other=1", b"\xff\xfe=1",
                                     b'payload={"type":"block_actions","user":{},"actions":[{}]}',
                                     b'payload={"type":"block_actions","user":{"id":"U1"},"actions":[]}',
                                     b'payload={"type":"block_actions","user":{"id":"U1"},"actions":["x"]}',
                                     b'payload={"type":"block_actions","user":"U1","actions":[{}]}'])
async def test_malformed_interaction_payloads_are_4xx(chat: Chat, make_config: Any, make_app: Any,
                                                      payload: bytes) -> None:
    await chat.start(make_config, make_app)
    response = await chat.post("/slack/interactions", payload)
    assert 400 <= response.status < 500, await response.text()
    assert set(await response.json()) == {"error", "field"}


async def test_other_interaction_types_are_acknowledged_and_ignored(chat: Chat, make_config: Any,
                                                                   make_app: Any) -> None:
    await chat.start(make_config, make_app)
    response = await chat.post("/slack/interactions", b'payload={"type":"view_submission","user":{"id":"U1"}}')
    assert response.status == 200 and await response.text() == ""


async def test_missing_command_fields_are_422(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    for field in ("user_id", "response_url", "command"):
        body, _ = chat.command_body("list")
        body = b"&".join(part for part in body.split(b"&") if not part.startswith(field.encode() + b"="))
        response = await chat.post("/slack/commands", body)
        assert response.status == 422, field
        assert (await response.json())["field"] == field


@pytest.mark.parametrize("path", PATHS)
async def test_without_a_signing_secret_the_routes_are_off(chat: Chat, make_config: Any, make_app: Any,
                                                           path: str) -> None:
    config = CONFIG.replace('signing_secret: "${SLACK_SIGNING_SECRET}", ', "")
    await chat.start(make_config, make_app, config=config)
    body = body_for(chat, path)
    response = await chat.post(path, body, {"X-Slack-Request-Timestamp": str(chat.now()),
                                            "X-Slack-Signature": sign(body, chat.now()), "Content-Type": FORM})
    assert response.status == 404
    error = await response.json()
    assert error == {"error": "Slack commands and buttons are off: set providers.slack.signing_secret in "
                              "responder.yaml", "field": "providers.slack.signing_secret"}


async def test_the_audit_api_needs_the_read_token(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    await chat.command("list", user=DANA)
    assert (await chat.client.get("/api/v1/audit")).status == 401
    assert (await chat.client.get("/api/v1/audit", headers={"Authorization": "Bearer nope"})).status == 401
    bad = await chat.client.get("/api/v1/audit", params={"limit": "x"},
                                headers={"Authorization": "Bearer audit-read-token"})
    assert bad.status == 400
    [entry] = await chat.audit()
    assert entry["actor"] == f"slack:{DANA}" and entry["user_name"] == "dana" and entry["command"] == "/incident list"
