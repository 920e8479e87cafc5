"""SlackStandIn: the Slack Web API methods responder's slack provider calls — chat.postMessage,
chat.update and chat.getPermalink — in Slack's shapes: `POST /api/<method>` (JSON or form body), the bot
token as `Authorization: Bearer xoxb-…`, answers HTTP 200 `{"ok": true, ...}` or `{"ok": false, "error": ...}`.

Messages are kept by (channel id, ts) with their edit count, so the demo can show that the incident's
message was posted once and updated in place, with the story threaded under it. Deliberately small: the
test suite's SlackFake (tests/fakes/slack.py) adds Block Kit validation, user groups and response_urls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from responder.demo.standins.base import StandIn

__all__ = ["Message", "SlackStandIn"]


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[Any]
    thread_ts: str | None = None
    edits: int = 0
    history: list[str] = field(default_factory=list)  # the text of each earlier version


class SlackStandIn(StandIn):
    name = "slack"

    def __init__(self, *, token: str, channels: dict[str, str] | None = None) -> None:
        #: channel name -> id
        self.channels = channels if channels is not None else {"incidents": "C0INC0001"}
        self.messages: dict[tuple[str, str], Message] = {}
        self._seq = 0
        super().__init__(token=token)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def top_level(self) -> list[Message]:
        return [m for m in self.messages.values() if m.thread_ts is None]

    def thread(self, message: Message) -> list[Message]:
        return sorted((m for m in self.messages.values() if m.channel == message.channel
                       and m.thread_ts == message.ts), key=lambda m: m.ts)

    # -- serving -----------------------------------------------------------------------------------
    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/api/chat.postMessage", self._post)
        router.add_post("/api/chat.update", self._update)
        router.add_route("*", "/api/chat.getPermalink", self._permalink)

    def authorized(self, request: web.Request) -> bool:
        return True  # Slack answers auth errors in the body, with HTTP 200: see _args

    async def _args(self, request: web.Request) -> dict[str, Any] | web.Response:
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = json.loads(await request.text() or "{}")
            args.update(body if isinstance(body, dict) else {})
        elif request.method == "POST":
            args.update({k: str(v) for k, v in (await request.post()).items()})
        if isinstance(args.get("blocks"), str):
            args["blocks"] = json.loads(args["blocks"])
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else args.pop("token", None)
        if token != self.token:
            return _error("invalid_auth" if token else "not_authed")
        return args

    def _channel(self, raw: Any) -> str | None:
        if raw in self.channels.values():
            return str(raw)
        return self.channels.get(str(raw or "").lstrip("#"))

    async def _post(self, request: web.Request) -> web.Response:
        args = await self._args(request)
        if isinstance(args, web.Response):
            return args
        channel = self._channel(args.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        if not args.get("text") and not args.get("blocks"):
            return _error("no_text")
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None and (channel, str(thread_ts)) not in self.messages:
            return _error("thread_not_found")
        self._seq += 1
        message = Message(channel, f"1700000000.{self._seq * 100:06d}", str(args.get("text") or ""),
                          list(args.get("blocks") or []), thread_ts)
        self.messages[(channel, message.ts)] = message
        return web.json_response({"ok": True, "channel": channel, "ts": message.ts,
                                  "message": {"type": "message", "text": message.text, "ts": message.ts}})

    async def _update(self, request: web.Request) -> web.Response:
        args = await self._args(request)
        if isinstance(args, web.Response):
            return args
        message = self.messages.get((str(args.get("channel")), str(args.get("ts"))))
        if message is None:
            return _error("message_not_found")
        message.history.append(message.text)
        message.text = str(args.get("text") or message.text)
        if args.get("blocks") is not None:
            message.blocks = list(args["blocks"])
        message.edits += 1
        return web.json_response({"ok": True, "channel": message.channel, "ts": message.ts, "text": message.text})

    async def _permalink(self, request: web.Request) -> web.Response:
        args = await self._args(request)
        if isinstance(args, web.Response):
            return args
        channel, ts = str(args.get("channel")), str(args.get("message_ts"))
        if (channel, ts) not in self.messages:
            return _error("message_not_found")
        return web.json_response({"ok": True, "channel": channel,
                                  "permalink": f"https://demo.slack.com/archives/{channel}/p{ts.replace('.', '')}"})


def _error(error: str) -> web.Response:
    return web.json_response({"ok": False, "error": error})
