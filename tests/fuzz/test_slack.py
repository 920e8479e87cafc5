"""Fuzz /slack/commands and /slack/interactions: realistic slash commands and button clicks mutated, signed
correctly or not, with malformed, stale or replayed timestamps. Never a 5xx; every 4xx is JSON naming the problem.

Every response_url is the loopback sink or not a URL at all: a correctly signed request makes the daemon post to
its response_url, and fuzzing must not send anything beyond this machine.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ
from tests.fuzz.strategies import CONTENT_TYPES, HEADER_VALUES, json_value, mutated, text
from tests.fuzz.world import SLACK_SIGNING_SECRET, LiveApp, assert_well_formed

Headers = list[tuple[str, "str | bytes"]]
NOW = 1767225600  # the FakeClock's 2026-01-01T00:00:00Z
SUBCOMMANDS = ["help", "list", "status", "status 1", "ack 1", "resolve 1 fixed", "note 1 looking", "rollback api",
               "restart api", "run notify api", "silence service=api 2h deploy", "silences", "unsilence x", "",
               "ack", "ack 999999", "silence service=api forever", "frobnicate"]
#: a fresh trigger_id per request, so a repeated example is not refused as a replay of the one before
TRIGGERS = itertools.count()
ACTIONS = ["incident_ack", "incident_resolve", "incident_rollback", "chatops_confirm", "chatops_cancel",
           "approval_approve", "approval_deny", "unknown"]


def safe_url(sink: str) -> st.SearchStrategy[Any]:
    """A response_url the daemon may post to: the loopback sink, or something that is not an http(s) URL."""
    return st.sampled_from([f"{sink}/response", f"{sink}/fail", "", "not a url", "ftp://x", None, 42])


def no_foreign_urls(doc: Any, sink: str) -> bool:
    """No string anywhere in `doc` (keys included) is a URL, except the sink's; iterative (docs nest deeply)."""
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "://" in item and not item.startswith(sink):
            return False
        if isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item
    return True


def sign(body: bytes, timestamp: str) -> str:
    return "v0=" + hmac.new(SLACK_SIGNING_SECRET.encode(), f"v0:{timestamp}:".encode() + body,
                            hashlib.sha256).hexdigest()


@st.composite
def slack_headers(draw: st.DrawFn, body: bytes) -> Headers:
    stamp = draw(st.sampled_from(["now"] * 12 + ["stale", "future", "absent", "garbage", "unicode", "huge"]))
    fixed: dict[str, str | bytes | None] = {
        "now": str(NOW), "stale": str(NOW - 301), "future": str(NOW + 301), "absent": None,
        "unicode": "١٧٦٧٢٢٥٦٠٠".encode(), "huge": "9" * 5000}
    timestamp = fixed[stamp] if stamp in fixed else draw(HEADER_VALUES)
    headers: Headers = []
    if timestamp is not None:
        headers.append(("X-Slack-Request-Timestamp", timestamp))
    text_stamp = timestamp.decode(errors="replace") if isinstance(timestamp, bytes) else (timestamp or "")
    signature = draw(st.sampled_from(["valid"] * 12 + ["absent", "garbage", "duplicated", "v1"]))
    valid = sign(body, text_stamp)
    if signature == "valid":
        headers.append(("X-Slack-Signature", valid))
    elif signature == "garbage":
        headers.append(("X-Slack-Signature", draw(HEADER_VALUES)))
    elif signature == "duplicated":
        headers += [("X-Slack-Signature", valid), ("X-Slack-Signature", "v0=00")]
    elif signature == "v1":
        headers.append(("X-Slack-Signature", "v1=" + valid[3:]))
    content_type = draw(st.sampled_from(["application/x-www-form-urlencoded"] * 24 + CONTENT_TYPES + [None]))
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    return headers


@st.composite
def command(draw: st.DrawFn, sink: str) -> tuple[bytes, Headers]:
    form: dict[str, Any] = {
        "token": "gIkuvaNzQIHg97ATvDxqgjtO", "team_id": "T0ACME001", "team_domain": "acme", "channel_id": "C0INC0001",
        "channel_name": "incidents", "user_id": "U0DANA001", "user_name": "dana",
        "command": draw(st.sampled_from(["/incident"] * 5 + ["/other", ""]) | text),
        "text": draw(st.sampled_from(SUBCOMMANDS) | text), "api_app_id": "A0RESP001",
        "response_url": draw(safe_url(sink)), "trigger_id": f"8123456789.1234567890.{next(TRIGGERS)}"}
    form = draw(st.one_of(st.just(form), st.just(form), mutated(form, 3)))
    if not isinstance(form, dict) or not no_foreign_urls(form, sink):
        form = {"text": "help"}
    fields = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in form.items()}
    body = urlencode(fields).encode() if draw(st.integers(0, 9)) else draw(st.binary(max_size=80))
    return body, draw(slack_headers(body))


@st.composite
def interaction(draw: st.DrawFn, sink: str) -> tuple[bytes, Headers]:
    payload: dict[str, Any] = {
        "type": draw(st.sampled_from(["block_actions"] * 5 + ["view_submission", "shortcut"])),
        "user": {"id": "U0DANA001", "username": "dana", "name": "dana", "team_id": "T0ACME001"},
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0INC0001"},
        "channel": {"id": "C0INC0001", "name": "incidents"}, "response_url": draw(safe_url(sink)),
        "actions": [{"type": "button", "action_id": draw(st.sampled_from(ACTIONS)),
                     "value": draw(st.sampled_from(["1", "x", "", "1:rollback", "999"]) | text),
                     "action_ts": f"{NOW}.{next(TRIGGERS)}"}]}
    payload = draw(st.one_of(st.just(payload), mutated(payload, 3), json_value))
    if not no_foreign_urls(payload, sink):
        payload = {"type": "block_actions"}
    how = draw(st.sampled_from(["payload"] * 6 + ["not-json", "missing", "extra"]))
    if how == "payload":
        body = urlencode({"payload": json.dumps(payload, allow_nan=True)}).encode()
    elif how == "not-json":
        body = urlencode({"payload": "{not json"}).encode()
    elif how == "missing":
        body = urlencode({"other": "1"}).encode()
    else:
        body = urlencode([("payload", json.dumps(payload)), ("payload", "[]")]).encode()
    return body, draw(slack_headers(body))


@pytest.mark.parametrize("path", ["/slack/commands", "/slack/interactions"])
def test_slack_fuzz(live: LiveApp, incident_id: str, path: str) -> None:
    strategy = command(live.sink.url) if path == "/slack/commands" else interaction(live.sink.url)

    @FUZZ
    @given(strategy)
    def run(case: tuple[bytes, Headers]) -> None:
        body, headers = case
        reply = live.request("POST", path, body=body, headers=headers)
        event(f"{reply.status}")
        assert_well_formed(reply, f"POST {path} {headers} {body[:300]!r}")
        if reply.status == 200 and path == "/slack/commands":
            assert reply.content_type == "application/json" and isinstance(reply.json(), dict)

    run()
    foreign = [r for r in live.sink.requests if r["path"] not in ("/response", "/fail")
               and not r["path"].startswith(("/slack/api", "/announce", "/health"))]
    assert not foreign, foreign[:3]
