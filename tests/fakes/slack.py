"""SlackFake: the Slack Web API methods responder uses (chat.postMessage, chat.update, chat.getPermalink,
usergroups.users.list) and the response_url endpoints of slash commands and buttons.

Real shapes: `POST /api/<method>` with a JSON body (`Content-Type: application/json`) or a form body
(`blocks` then holds a JSON string), the token as `Authorization: Bearer xoxb-…` (or a `token` form field);
answers are HTTP 200 `{"ok": true, ...}` or HTTP 200 `{"ok": false, "error": "invalid_auth"}` (errors are
in the body, not the status). Channel names (`#incidents`, `incidents`) resolve to ids (`C0INC0001`);
chat.update wants the id. Blocks are checked against Slack's limits (type on every block, action_id on
buttons, text lengths, 50 blocks): a bad message is `invalid_blocks`, as Slack answers.

Messages are kept by (channel id, ts) with their text, blocks, thread_ts and edit count, so a test can
assert the message was edited in place and which replies its thread holds.

User groups (`usergroups`: id -> member ids) answer usergroups.users.list (`no_such_subteam` for others).
`response_url()` makes a URL like Slack's `https://hooks.slack.com/commands/T…/…/…` on this fake: what is
posted there is kept in `responses` (path and JSON); like Slack, a URL takes 5 messages, then answers
404 `used_url`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.vendor import FakeVendor

__all__ = ["SlackFake", "SlackMessage"]

TOKEN = "xoxb-1234567890-0987654321-fAkEtOkEnSeCrEt42"
BLOCK_TYPES = {"section", "header", "context", "actions", "divider", "image", "input", "rich_text", "file", "video"}


@dataclass
class SlackMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    edits: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # previous (text, blocks) versions

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "subtype": "bot_message", "text": self.text, "ts": self.ts,
                               "user": "U0RESPBOT", "bot_id": "B0RESP001", "app_id": "A0RESP001",
                               "team": "T0ACME001", "blocks": self.blocks}
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.edits:
            out["edited"] = {"user": "U0RESPBOT", "ts": self.ts}
        return out


class SlackError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _text_len(obj: Any) -> int:
    return len(obj.get("text", "")) if isinstance(obj, dict) else 0


def _check_text_object(obj: Any, limit: int, where: str) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn") \
            or not isinstance(obj.get("text"), str) or not obj["text"]:
        raise SlackError("invalid_blocks", messages=[f"[ERROR] {where}: must be a text object with text"])
    if len(obj["text"]) > limit:
        raise SlackError("invalid_blocks", messages=[f"[ERROR] {where}: must be less than {limit + 1} characters"])


def _check_element(element: Any, where: str) -> None:
    if not isinstance(element, dict) or not element.get("type"):
        raise SlackError("invalid_blocks", messages=[f"[ERROR] {where}: missing type"])
    if element["type"] == "button":
        action_id = element.get("action_id")
        if not isinstance(action_id, str) or not action_id or len(action_id) > 255:
            raise SlackError("invalid_blocks", messages=[f"[ERROR] {where}: a button needs an action_id"])
        _check_text_object(element.get("text"), 75, f"{where}.text")
        if element["text"]["type"] != "plain_text":
            raise SlackError("invalid_blocks", messages=[f"[ERROR] {where}.text: must be plain_text"])
        if len(str(element.get("value", ""))) > 2000:
            raise SlackError("invalid_blocks", messages=[f"[ERROR] {where}.value: too long"])
        if element.get("style") not in (None, "primary", "danger"):
            raise SlackError("invalid_blocks", messages=[f"[ERROR] {where}.style: primary or danger"])
        confirm = element.get("confirm")
        if confirm is not None:
            for key, limit in (("title", 100), ("text", 300), ("confirm", 30), ("deny", 30)):
                _check_text_object(confirm.get(key), limit, f"{where}.confirm.{key}")


def _check_block(block: dict[str, Any], where: str) -> None:
    kind = block["type"]
    if kind == "header":
        _check_text_object(block.get("text"), 150, f"{where}.text")
    elif kind == "section":
        if "text" not in block and "fields" not in block:
            raise SlackError("invalid_blocks", messages=[f"[ERROR] {where}: text or fields required"])
        if "text" in block:
            _check_text_object(block["text"], 3000, f"{where}.text")
        fields = block.get("fields", [])
        if len(fields) > 10:
            raise SlackError("invalid_blocks", messages=[f"[ERROR] {where}.fields: at most 10"])
        for j, item in enumerate(fields):
            _check_text_object(item, 2000, f"{where}.fields[{j}]")
    elif kind in ("context", "actions"):
        elements = block.get("elements") or []
        most = 10 if kind == "context" else 25
        if not 1 <= len(elements) <= most:
            raise SlackError("invalid_blocks", messages=[f"[ERROR] {where}.elements: 1 to {most}"])
        for j, item in enumerate(elements):
            if kind == "context":
                _check_text_object(item, 3000, f"{where}.elements[{j}]")
            else:
                _check_element(item, f"{where}.elements[{j}]")


def validate_blocks(blocks: Any) -> list[dict[str, Any]]:
    """Slack's limits, enough to catch a renderer that drifts: raises SlackError('invalid_blocks')."""
    if not isinstance(blocks, list) or len(blocks) > 50:
        raise SlackError("invalid_blocks", messages=["[ERROR] blocks must be an array of at most 50 blocks"])
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            raise SlackError("invalid_blocks", messages=[f"[ERROR] {where}: unknown or missing type"])
        if len(str(block.get("block_id", ""))) > 255:
            raise SlackError("invalid_blocks", messages=[f"[ERROR] {where}.block_id: too long"])
        _check_block(block, where)
    return blocks


class SlackFake(FakeVendor):
    name = "slack"

    def __init__(self, *, token: str | None = TOKEN, channels: dict[str, str] | None = None,
                 member_of: set[str] | None = None, usergroups: dict[str, list[str]] | None = None) -> None:
        #: channel name -> id
        self.channels = channels if channels is not None else {"incidents": "C0INC0001", "ops": "C0OPS0002"}
        #: channels the bot was invited to (default: all)
        self.member_of = member_of if member_of is not None else set(self.channels.values())
        self.messages: dict[tuple[str, str], SlackMessage] = {}
        #: method -> errors to answer (ok: false) on its next calls, after the auth check
        self.errors: dict[str, list[str]] = {}
        #: user group id -> member user ids
        self.usergroups = usergroups if usergroups is not None else {}
        #: what was posted to response_urls: {"path", "json"}
        self.responses: list[dict[str, Any]] = []
        self._seq = 0
        super().__init__(token=token)

    # -- test helpers ------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def top_level(self) -> list[SlackMessage]:
        return [m for m in self.messages.values() if m.thread_ts is None]

    def thread(self, channel: str, ts: str) -> list[SlackMessage]:
        return sorted((m for m in self.messages.values() if m.channel == channel and m.thread_ts == ts),
                      key=lambda m: m.ts)

    def response_url(self, kind: str = "commands") -> str:
        """A fresh response_url (kind: commands for slash commands, actions for buttons)."""
        return f"{self.url}/{kind}/T0ACME001/{secrets.randbelow(10**9)}/{secrets.token_urlsafe(18)}"

    def responses_to(self, url: str) -> list[dict[str, Any]]:
        """The JSON bodies posted to one response_url, in order."""
        path = url.removeprefix(self.url)
        return [r["json"] for r in self.responses if r["path"] == path]

    def error_next(self, method: str, error: str, times: int = 1) -> None:
        """Answer the next call(s) of one method with `{"ok": false, "error": error}` (HTTP 200)."""
        self.errors.setdefault(method, []).extend([error] * times)

    def method_calls(self, method: str) -> list[dict[str, Any]]:
        """Parsed bodies of the calls to one Web API method (JSON or form), in order."""
        out = []
        for r in self.calls(path=f"/api/{method}"):
            out.append(r.json if isinstance(r.json, dict) else dict(r.query))
        return out

    # -- serving -----------------------------------------------------------------------------------
    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/api/chat.postMessage", self._wrap("chat.postMessage", self.post_message))
        router.add_post("/api/chat.update", self._wrap("chat.update", self.update))
        router.add_route("*", "/api/chat.getPermalink", self._wrap("chat.getPermalink", self.permalink))
        router.add_route("*", "/api/usergroups.users.list", self._wrap("usergroups.users.list", self.group_members))
        router.add_post("/{kind:commands|actions}/{team}/{id}/{secret}", self.receive_response)

    def authorized(self, request: web.Request) -> bool:
        return True  # Slack answers auth errors in the body (HTTP 200): checked in _wrap

    def _wrap(self, name: str, method: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            try:
                args = await self._args(request)
                self._auth(request, args)
                if self.errors.get(name):
                    raise SlackError(self.errors[name].pop(0))
                result: dict[str, Any] = await method(args)
            except SlackError as exc:
                body: dict[str, Any] = {"ok": False, "error": exc.error}
                if exc.extra.get("needed"):
                    body["needed"] = exc.extra["needed"]
                if exc.extra.get("messages"):
                    body["response_metadata"] = {"messages": exc.extra["messages"]}
                return web.json_response(body)
            return web.json_response({"ok": True, **result})
        return handler

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.method != "POST":
            return args
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = json.loads(await request.text() or "{}")
            except ValueError:
                raise SlackError("invalid_json") from None
            if not isinstance(body, dict):
                raise SlackError("invalid_json")
            args.update(body)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            args.update({k: str(v) for k, v in form.items()})
            if isinstance(args.get("blocks"), str):
                try:
                    args["blocks"] = json.loads(args["blocks"])
                except ValueError:
                    raise SlackError("invalid_blocks_format") from None
        elif await request.read():
            raise SlackError("invalid_form_data")
        return args

    def _auth(self, request: web.Request, args: dict[str, Any]) -> None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else args.pop("token", None)
        if not token:
            raise SlackError("not_authed")
        if self.token is not None and token != self.token:
            raise SlackError("invalid_auth")

    def _channel(self, raw: Any, *, names: bool = True) -> str:
        if not isinstance(raw, str) or not raw:
            raise SlackError("channel_not_found")
        if raw in self.channels.values():
            channel = raw
        elif names and raw.lstrip("#") in self.channels:
            channel = self.channels[raw.lstrip("#")]
        else:
            raise SlackError("channel_not_found")
        if channel not in self.member_of:
            raise SlackError("not_in_channel")
        return channel

    def _next_ts(self) -> str:
        self._seq += 1
        return f"1700000000.{self._seq * 100:06d}"

    @staticmethod
    def _content(args: dict[str, Any], *, required: bool = True) -> tuple[str, list[dict[str, Any]] | None]:
        text = args.get("text")
        blocks = validate_blocks(args["blocks"]) if args.get("blocks") not in (None, "") else None
        if text is not None and not isinstance(text, str):
            raise SlackError("invalid_arguments")
        if required and not text and not blocks:
            raise SlackError("no_text")
        if text and len(text) > 40_000:
            raise SlackError("msg_too_long")
        return text or "", blocks

    async def post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        text, blocks = self._content(args)
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            parent = self.messages.get((channel, str(thread_ts)))
            if parent is None or parent.thread_ts is not None:
                raise SlackError("thread_not_found")
        message = SlackMessage(channel, self._next_ts(), text, blocks or [], thread_ts)
        self.messages[(channel, message.ts)] = message
        return {"channel": channel, "ts": message.ts, "message": message.as_json()}

    async def update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"), names=False)
        ts = args.get("ts")
        message = self.messages.get((channel, str(ts))) if ts else None
        if message is None:
            raise SlackError("message_not_found")
        text, blocks = self._content(args, required=False)
        if not text and blocks is None and not message.text:
            raise SlackError("no_text")
        message.history.append({"text": message.text, "blocks": message.blocks})
        if text:
            message.text = text
        if blocks is not None:  # omitted blocks are retained, [] clears them
            message.blocks = blocks
        message.edits += 1
        return {"channel": channel, "ts": message.ts, "text": message.text, "message": message.as_json()}

    async def group_members(self, args: dict[str, Any]) -> dict[str, Any]:
        group = args.get("usergroup")
        if not group:
            raise SlackError("invalid_arguments")
        if group not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    async def receive_response(self, request: web.Request) -> web.Response:
        """A response_url: JSON `text`/`blocks`/`response_type`/`replace_original`; 5 uses."""
        if len([r for r in self.responses if r["path"] == request.path]) >= 5:
            return web.Response(status=404, text="used_url")
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return web.Response(status=400, text="no_text")
        if body.get("blocks") is not None:
            try:
                validate_blocks(body["blocks"])
            except SlackError:
                return web.Response(status=400, text="invalid_blocks")
        self.responses.append({"path": request.path, "json": body})
        return web.Response(text="ok")

    async def permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"), names=False)
        ts = str(args.get("message_ts") or "")
        message = self.messages.get((channel, ts))
        if message is None:
            raise SlackError("message_not_found")
        link = f"https://acme.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        if message.thread_ts:
            link += f"?thread_ts={message.thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": link}
