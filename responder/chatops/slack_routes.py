"""POST /slack/commands, POST /slack/interactions (Slack-signed) and GET /api/v1/audit (read token).

Every Slack request is verified before its body is looked at: the v0 signature over the raw body with
providers.slack.signing_secret (slack-sdk's SignatureVerifier on the app's clock), a timestamp within 5
minutes, and a signature seen once (a replay inside the window is refused). Missing headers, a malformed
or stale timestamp, a wrong or replayed signature: 401 JSON `{"error", "field"}`. Without a signing secret
both routes answer 404 JSON saying how to turn them on (the feature is off, not failing).

A command is answered within chatops.slack.ack_within (Slack waits 3 s); a click is answered with an empty
200 at once and acted on in the background.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier

from responder.api.incidents import require_token
from responder.chatops.messages import Reply
from responder.chatops.model import Click, CommandRequest, SlackUser
from responder.clock import Clock
from responder.errors import IngestError, PayloadError, SignatureError
from responder.keys import CLOCK, CONFIG, METRICS, SERVICES
from responder.logs import get_logger

__all__ = ["setup_chatops_routes"]

log = get_logger(__name__)

TIMESTAMP = "X-Slack-Request-Timestamp"
SIGNATURE = "X-Slack-Signature"
#: Slack's window: requests older (or newer) than this are refused
WINDOW_SECONDS = 300
FORM = "application/x-www-form-urlencoded"


class _AppClock(SlackClock):
    """slack-sdk's Clock (Unix seconds) over the app's clock (fake in tests)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now().timestamp()


async def _verified_form(request: web.Request) -> dict[str, str]:
    """The form fields of a request Slack signed; raises IngestError (429, 404, 401, 415, 400) otherwise."""
    await request.app[SERVICES].rate_limits.check(request, "slack")  # counts its own refusals
    try:
        return await _verify(request)
    except IngestError as exc:
        request.app[METRICS].webhooks_rejected.labels(source="slack", status=str(exc.status)).inc()
        raise


async def _verify(request: web.Request) -> dict[str, str]:
    secret = request.app[CONFIG].config.providers.slack.signing_secret
    if secret is None or not secret.get_secret_value():
        raise PayloadError("Slack commands and buttons are off: set providers.slack.signing_secret in responder.yaml",
                           field="providers.slack.signing_secret", status=404)
    body = await request.read()
    timestamp = request.headers.get(TIMESTAMP, "").strip()
    signature = request.headers.get(SIGNATURE, "").strip()
    if not timestamp:
        raise SignatureError(f"missing {TIMESTAMP}", TIMESTAMP)
    if not signature:
        raise SignatureError(f"missing {SIGNATURE}", SIGNATURE)
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:  # int() refuses 4300+ digits
        raise SignatureError(f"malformed {TIMESTAMP}: not Unix time in seconds", TIMESTAMP)
    clock = request.app[CLOCK]
    if abs(clock.now().timestamp() - int(timestamp)) > WINDOW_SECONDS:
        raise SignatureError(f"stale request: {TIMESTAMP} is more than 5 minutes from now", TIMESTAMP)
    verifier = SignatureVerifier(secret.get_secret_value(), clock=_AppClock(clock))
    try:
        valid = verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError):  # slack-sdk raises on what it cannot
        # read (TypeError: hmac.compare_digest on a non-ASCII signature)
        valid = False
    if not valid:
        raise SignatureError(f"invalid signature in {SIGNATURE}", SIGNATURE)
    if await request.app[SERVICES].chatops.audit.seen(signature, WINDOW_SECONDS * 2 * 1000):
        raise SignatureError(f"replayed request: this {SIGNATURE} was already used", SIGNATURE)
    if request.content_type != FORM:
        raise PayloadError(f"unsupported Content-Type {request.content_type!r}; expected {FORM}",
                           field="Content-Type", status=415)
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise PayloadError("body is not UTF-8", field="body") from None


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise PayloadError(f"missing form field {name!r}", field=name, status=422)
    return value


async def slack_command(request: web.Request) -> web.Response:
    form = await _verified_form(request)
    chatops = request.app[SERVICES].chatops
    response_url = _required(form, "response_url")
    if not response_url.startswith(("https://", "http://")):
        raise PayloadError("response_url must be an http(s) URL", field="response_url", status=422)
    command = _required(form, "command")
    if command != chatops.config.command:
        return web.json_response(Reply(f"This responder answers `{chatops.config.command}`, not `{command}` (set "
                                       "chatops.slack.command in responder.yaml).").as_json())
    req = CommandRequest(user=SlackUser(_required(form, "user_id"), form.get("user_name", "")),
                         channel_id=form.get("channel_id", ""), command=command, text=form.get("text", ""),
                         response_url=response_url, channel_name=form.get("channel_name", ""),
                         team_id=form.get("team_id", ""))
    reply = await chatops.handle_command(req)
    return web.json_response(reply.as_json())


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"payload field {field!r} must be an object", field=f"payload.{field}", status=422)
    return value


async def slack_interaction(request: web.Request) -> web.Response:
    form = await _verified_form(request)
    raw = form.get("payload")
    if raw is None:
        raise PayloadError("missing form field 'payload'", field="payload")
    try:
        payload = json.loads(raw)
    except ValueError:
        raise PayloadError("payload is not valid JSON", field="payload") from None
    if not isinstance(payload, dict):
        raise PayloadError("payload must be a JSON object", field="payload")
    if payload.get("type") != "block_actions":
        log.info("slack interaction ignored", type=str(payload.get("type"))[:40])
        return web.Response(status=200)
    user = _object(payload.get("user"), "user")
    user_id = user.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise PayloadError("payload field 'user.id' is missing", field="payload.user.id", status=422)
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        raise PayloadError("payload field 'actions' must be a non-empty list", field="payload.actions", status=422)
    container: dict[str, Any] = payload.get("container") or {}
    channel: dict[str, Any] = payload.get("channel") or {}
    if not isinstance(container, dict) or not isinstance(channel, dict):
        raise PayloadError("payload fields 'container' and 'channel' must be objects", field="payload", status=422)
    response_url = payload.get("response_url")
    who = SlackUser(user_id, str(user.get("username") or user.get("name") or ""))
    chatops = request.app[SERVICES].chatops
    for action in actions[:5]:
        action = _object(action, "actions[]")
        chatops.handle_click(Click(
            user=who, action_id=str(action.get("action_id") or ""), value=str(action.get("value") or ""),
            response_url=response_url if isinstance(response_url, str) and response_url else None,
            channel_id=str(channel.get("id") or container.get("channel_id") or "") or None,
            message_ts=str(container.get("message_ts") or "") or None))
    return web.Response(status=200)


async def get_audit(request: web.Request) -> web.Response:
    """The audit log, newest first: ?limit= (1-1000, default 100), ?user= (Slack user id), ?incident= (id)."""
    require_token(request, "read")
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), 1000)
    except ValueError:
        raise PayloadError("limit must be a whole number", field="limit") from None
    user = request.query.get("user")
    incident = request.query.get("incident")
    entries = await request.app[SERVICES].chatops.audit.recent(limit if not (user or incident) else 10_000)
    if user:
        entries = [e for e in entries if e.get("user_id") == user]
    if incident:
        entries = [e for e in entries if e.get("incident_id") == incident]
    return web.json_response({"entries": entries[:limit]})


def setup_chatops_routes(app: web.Application) -> None:
    app.router.add_post("/slack/commands", slack_command)
    app.router.add_post("/slack/interactions", slack_interaction)
    app.router.add_get("/api/v1/audit", get_audit)
