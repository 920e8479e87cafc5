"""slack: the incident message (Block Kit), kept as ONE message per incident and edited in place.

Actions:
- `slack.post`   posts the incident message (or, when it already exists, updates it and puts `text` in
                 its thread); the channel and ts are kept in ProviderState so every later step and
                 every replica edits that same message.
- `slack.update` edits the message with the incident as it is now (chat.update).
- `slack.reply`  a reply in the message's thread.

Calls go through slack-sdk's AsyncWebClient on the app's shared aiohttp session. Its
AsyncRateLimitErrorRetryHandler (one retry) waits out a 429 whose Retry-After is at most
`rate_limit_wait`; a longer wait, or a second 429, goes back to the runner as retryable with the
Retry-After. With a shared session the SDK applies no timeout of its own, so each HTTP attempt is
bounded by `timeout` here. Slack answers most errors as HTTP 200 `{"ok": false, "error": ...}`: they are
classified by name (invalid_auth and friends: fix the token; channel_not_found / not_in_channel /
invalid_blocks: permanent; internal_error and the like: retryable), HTTP 5xx and network errors are
retryable, 401/403 permanent. The SDK's own debug logging (which prints response bodies) is kept quiet.

One message per incident: before posting, a step claims the incident with ProviderState.set_if_absent;
a step that loses waits briefly for the winner's ts and then updates that message instead. A claim whose
post failed is released, and one left by a replica that died is taken over after CLAIM_STALE.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import aiohttp
from pydantic import Field, SecretStr
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from responder.actions.base import (
    ActionProvider,
    ActionResult,
    PlannedCall,
    ProviderDeps,
    StepContext,
    VendorConfig,
    retry_after_seconds,
)
from responder.actions.slack_message import TEXT_MAX, escape, render_incident, truncate
from responder.config.base import Duration, StrictModel
from responder.errors import ActionError, PermanentActionError, RetryableActionError
from responder.incidents.model import Incident
from responder.incidents.service import IncidentNotFound
from responder.logs import get_logger, redact_text

__all__ = [
    "SlackConfig",
    "SlackPostParams",
    "SlackProvider",
    "SlackReplyParams",
    "SlackUpdateParams",
]

log = get_logger(__name__)

DEFAULT_BASE_URL = "https://slack.com/api/"
#: ProviderState namespace: channel, ts, permalink, incident_url, note, claim
STATE = "slack"
#: a claim older than this without a ts is taken to be left by a replica that died mid-post
CLAIM_STALE = timedelta(minutes=2)
#: how often (once a second) a step that lost the claim looks for the winner's ts before giving up (retryable)
CLAIM_POLLS = 5

AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
                         "no_permission", "not_allowed_token_type", "ekm_access_denied"})
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout",
                              "team_added_to_org"})

#: slack-sdk logs request/response bodies at DEBUG (an error body may echo anything): it gets its own quiet logger
_SDK_LOG = logging.getLogger("responder.actions.slack.sdk")
_SDK_LOG.setLevel(logging.WARNING)


class SlackConfig(VendorConfig):
    base_url: str | None = Field(default=DEFAULT_BASE_URL, description="Slack Web API URL (tests, proxies)")
    bot_token: SecretStr | None = Field(default=None, description="bot token (xoxb-…) with the chat:write scope")
    signing_secret: SecretStr | None = Field(default=None, description="verifies requests from Slack (buttons, "
                                                                        "slash commands)")
    channel: str | None = Field(default=None, description="default channel for slack.post (id or #name)")
    rate_limit_wait: Duration = Field(default=timedelta(seconds=10),
                                      description="longest Retry-After the client waits out itself (once); "
                                                  "a longer one goes back to the runner")

    def has_credentials(self) -> bool:
        return self.bot_token is not None and bool(self.bot_token.get_secret_value())


class SlackPostParams(StrictModel):
    channel: str | None = Field(default=None, description="channel id (C…) or #name; default providers.slack.channel")
    text: str | None = Field(default=None, description="an extra line: shown in the message when it is first "
                                                        "posted, else posted as a thread reply")


class SlackUpdateParams(StrictModel):
    """No parameters: the stored message is re-rendered from the incident as it is now."""


class SlackReplyParams(StrictModel):
    text: str = Field(min_length=1, description="the reply, in the incident message's thread (mrkdwn)")
    broadcast: bool = Field(default=False, description="also show the reply in the channel (reply_broadcast)")


class _RateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack-sdk's 429 handler (one retry), waiting only for a whole-second Retry-After up to `max_wait`."""

    def __init__(self, max_wait: float) -> None:
        super().__init__(max_retry_count=1)
        self.max_wait = max_wait

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                               error: Exception | None = None) -> bool:
        if response is None or response.status_code != 429:
            return False
        values = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), [])
        raw = (values[0] if isinstance(values, list) and values else str(values or "")).strip()
        return raw.isdigit() and int(raw) <= self.max_wait


class _Client(AsyncWebClient):
    """AsyncWebClient with a timeout on each HTTP attempt: with a caller's session the SDK sets none."""

    def __init__(self, *, attempt_timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.attempt_timeout = attempt_timeout

    async def _request(self, *, http_verb: str, api_url: str, req_args: dict[str, Any]) -> dict[str, Any]:
        req_args.setdefault("timeout", aiohttp.ClientTimeout(total=self.attempt_timeout))
        return await super()._request(http_verb=http_verb, api_url=api_url, req_args=req_args)


class SlackProvider(ActionProvider):
    name = "slack"
    Config = SlackConfig
    actions = {"post": SlackPostParams, "update": SlackUpdateParams, "reply": SlackReplyParams}

    def __init__(self, config: StrictModel | None, deps: ProviderDeps) -> None:
        super().__init__(config, deps)
        assert isinstance(config, SlackConfig)
        self.cfg = config
        self.base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/") + "/"
        self.timeout = config.timeout.total_seconds()
        token = config.bot_token.get_secret_value() if config.bot_token else None
        self.client = _Client(token=token, base_url=self.base_url, session=deps.http, logger=_SDK_LOG,
                              timeout=max(1, round(self.timeout)), attempt_timeout=self.timeout,
                              retry_handlers=[_RateLimitRetry(config.rate_limit_wait.total_seconds())])

    # -- the actions -------------------------------------------------------------------------------
    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        if isinstance(params, SlackPostParams):
            return await self._post(params, ctx)
        if isinstance(params, SlackUpdateParams):
            stored = await self._require_message(ctx.incident.id, "slack.update")
            await self.update_message(await self._current(ctx.incident), stored)
            return ActionResult(f"updated the incident message in {stored['channel']}", self._output(stored))
        if isinstance(params, SlackReplyParams):
            stored = await self._require_message(ctx.incident.id, "slack.reply")
            reply_ts = await self.reply(stored, escape(params.text), broadcast=params.broadcast)
            return ActionResult(f"replied in the incident message's thread in {stored['channel']}",
                                {**self._output(stored), "reply_ts": reply_ts})
        raise PermanentActionError(f"slack: unknown action slack.{verb}")

    async def _post(self, params: SlackPostParams, ctx: StepContext) -> ActionResult:
        incident = await self._current(ctx.incident)
        stored = await self.deps.state.get(incident.id, STATE)
        if not stored.get("ts"):
            channel = self._channel(params)  # needed only to post: an existing message is updated where it is
            stored = await self._claim(incident.id, ctx.idempotency_key) or {}
            if not stored.get("ts"):
                return await self._post_new(incident, channel, params.text, ctx)
        await self.update_message(incident, stored)
        output = self._output(stored)
        summary = f"updated the incident message in {stored['channel']}"
        if params.text:
            output["reply_ts"] = await self.reply(stored, escape(params.text))
            summary += " and replied in its thread"
        return ActionResult(summary, {**output, "posted": False})

    async def _post_new(self, incident: Incident, channel: str, note: str | None, ctx: StepContext) -> ActionResult:
        url = ctx.incident_url or self._incident_url(incident, {})
        text, blocks = render_incident(incident, incident_url=url, note=note)
        try:
            data = await self._send("chat.postMessage", self.client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False))
        except ActionError:
            await self._release(incident.id, ctx.idempotency_key)
            raise
        posted = {"channel": str(data.get("channel") or channel), "ts": str(data.get("ts") or "")}
        if not posted["ts"]:
            raise PermanentActionError("slack: chat.postMessage answered without a ts")
        permalink = await self._permalink(posted["channel"], posted["ts"])
        extra = {k: v for k, v in (("permalink", permalink), ("incident_url", url), ("note", note)) if v}
        await self.deps.state.set(incident.id, STATE, **posted, **extra)
        stored = {**posted, **extra}
        return ActionResult(f"posted the incident message to {channel} (ts {posted['ts']})",
                            {**self._output(stored), "posted": True})

    # -- used by SlackSync as well -----------------------------------------------------------------
    async def message(self, incident_id: str) -> dict[str, str] | None:
        """The stored message (channel, ts, permalink, ...) or None when none was posted."""
        stored = await self.deps.state.get(incident_id, STATE)
        return stored if stored.get("ts") and stored.get("channel") else None

    async def update_message(self, incident: Incident, stored: dict[str, str]) -> None:
        """chat.update of the stored message with `incident` rendered."""
        text, blocks = render_incident(incident, incident_url=self._incident_url(incident, stored),
                                       note=stored.get("note"))
        await self._send("chat.update", self.client.chat_update(channel=stored["channel"], ts=stored["ts"],
                                                                text=text, blocks=blocks))

    async def reply(self, stored: dict[str, str], text: str, *, broadcast: bool = False) -> str:
        """A reply in the thread of the stored message (text is mrkdwn, escaped by the caller); returns its ts."""
        data = await self._send("chat.postMessage", self.client.chat_postMessage(
            channel=stored["channel"], thread_ts=stored["ts"], text=truncate(text, TEXT_MAX),
            reply_broadcast=broadcast or None, unfurl_links=False, unfurl_media=False))
        return str(data.get("ts") or "")

    # -- dry-run -----------------------------------------------------------------------------------
    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        headers = {"Authorization": "Bearer <providers.slack.bot_token>",
                   "Content-Type": "application/json; charset=utf-8"}
        url = ctx.incident_url or self._incident_url(ctx.incident, {})
        stored_channel, stored_ts = "<channel of the incident message>", "<ts of the incident message>"
        if isinstance(params, SlackPostParams):
            text, blocks = render_incident(ctx.incident, incident_url=url, note=params.text)
            channel = (params.channel or "").strip() or (self.cfg.channel or "").strip() \
                or "<no channel: set channel or providers.slack.channel>"
            body = {"channel": channel, "text": text, "blocks": blocks,
                    "unfurl_links": False, "unfurl_media": False}
            return [PlannedCall("POST", self._url("chat.postMessage"), body, headers,
                                note="when the incident already has its message: chat.update of that message "
                                     "(and `text` as a reply in its thread) instead")]
        if isinstance(params, SlackUpdateParams):
            text, blocks = render_incident(ctx.incident, incident_url=url)
            body = {"channel": stored_channel, "ts": stored_ts, "text": text, "blocks": blocks}
            return [PlannedCall("POST", self._url("chat.update"), body, headers,
                                note="fails when no slack.post step posted the incident message")]
        if isinstance(params, SlackReplyParams):
            body = {"channel": stored_channel, "thread_ts": stored_ts, "text": escape(params.text),
                    "reply_broadcast": params.broadcast}
            return [PlannedCall("POST", self._url("chat.postMessage"), body, headers)]
        return super().plan(verb, params, ctx)

    # -- helpers -----------------------------------------------------------------------------------
    def _url(self, method: str) -> str:
        return f"{self.base_url}{method}"

    def _channel(self, params: SlackPostParams) -> str:
        channel = (params.channel or "").strip() or (self.cfg.channel or "").strip()
        if not channel:
            raise PermanentActionError("slack.post: no channel: set `channel` in the step's `with:` or "
                                       "providers.slack.channel in responder.yaml")
        return channel

    def _incident_url(self, incident: Incident, stored: dict[str, str]) -> str | None:
        if stored.get("incident_url"):
            return stored["incident_url"]
        if self.deps.public_url:
            return f"{self.deps.public_url.rstrip('/')}/incidents/{incident.id}"
        return None

    async def _current(self, incident: Incident) -> Incident:
        try:
            return await self.deps.incidents.get(incident.id)
        except IncidentNotFound:
            return incident

    async def _require_message(self, incident_id: str, action: str) -> dict[str, str]:
        stored = await self.message(incident_id)
        if stored is None:
            raise PermanentActionError(f"{action}: incident {incident_id} has no Slack message yet; "
                                       "run a slack.post step first")
        return stored

    @staticmethod
    def _output(stored: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {"channel": stored["channel"], "ts": stored["ts"]}
        if stored.get("permalink"):
            out["permalink"] = stored["permalink"]
        return out

    async def _permalink(self, channel: str, ts: str) -> str | None:
        """Best effort: a message without a permalink is still posted."""
        try:
            data = await self._send("chat.getPermalink", self.client.chat_getPermalink(channel=channel, message_ts=ts))
        except ActionError as exc:
            log.warning("slack permalink not available", error=str(exc))
            return None
        link = data.get("permalink")
        return link if isinstance(link, str) else None

    # -- one message per incident ------------------------------------------------------------------
    def _token(self, key: str) -> str:
        """`<run:step>@<epoch>/<nonce>`: who claimed, when, and unique (a takeover claims the exact value)."""
        return f"{key}@{self.deps.clock.now().timestamp():.3f}/{uuid.uuid4().hex[:8]}"

    def _stale(self, claim: str) -> bool:
        try:
            since = float(claim.rpartition("@")[2].partition("/")[0])
        except ValueError:
            return True
        return self.deps.clock.now().timestamp() - since > CLAIM_STALE.total_seconds()

    async def _claim(self, incident_id: str, key: str) -> dict[str, str] | None:
        """Claim the right to post the incident's message: None when this step may post, else the stored state
        once the claim holder has posted (its ts)."""
        state = self.deps.state
        token = self._token(key)
        if await state.set_if_absent(incident_id, STATE, "claim", token):
            return None
        for attempt in range(CLAIM_POLLS + 1):
            stored = await state.get(incident_id, STATE)
            if stored.get("ts"):
                return stored
            claim = stored.get("claim", "")
            holder = claim.rpartition("@")[0]
            if holder == key:  # an earlier attempt of this very step: it never got a ts, post again
                return None
            if (holder.startswith("released:") or self._stale(claim)) \
                    and await state.set_if_absent(incident_id, STATE, f"takeover:{claim}", token):
                await state.set(incident_id, STATE, claim=token)
                return None
            if attempt < CLAIM_POLLS:
                await self.deps.clock.sleep(1)
        raise RetryableActionError("slack: another step is posting this incident's message right now; the next "
                                   "attempt updates that message", retry_after=2)

    async def _release(self, incident_id: str, key: str) -> None:
        stored = await self.deps.state.get(incident_id, STATE)
        if stored.get("claim", "").rpartition("@")[0] == key and not stored.get("ts"):
            await self.deps.state.set(incident_id, STATE, claim="released:" + self._token(key))

    # -- calls and classification ------------------------------------------------------------------
    async def _send(self, method: str, call: Awaitable[AsyncSlackResponse]) -> dict[str, Any]:
        """Await one SDK call; every failure becomes a classified ActionError without secrets."""
        try:
            response = await call
        except SlackApiError as exc:
            raise self._classify(method, exc) from None
        except TimeoutError:
            raise RetryableActionError(f"slack: {method} timed out after {self.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise RetryableActionError(f"slack: {method} failed: {exc.__class__.__name__}: "
                                       f"{self._clean(str(exc))}") from None
        except SlackClientError as exc:
            raise PermanentActionError(f"slack: {method}: {exc.__class__.__name__}: {self._clean(str(exc))}") from None
        data = response.data
        return data if isinstance(data, dict) else {}

    def _clean(self, text: str) -> str:
        return redact_text(text, self.secrets())[:300]

    def _classify(self, method: str, exc: SlackApiError) -> ActionError:
        response = exc.response
        status = getattr(response, "status_code", None) or getattr(response, "status", None) or 0
        data = getattr(response, "data", None)
        data = data if isinstance(data, dict) else {}
        error = self._clean(str(data.get("error") or ""))
        headers = getattr(response, "headers", None) or {}
        what = f"slack: {method}"
        if status == 429 or error == "ratelimited":
            return RetryableActionError(f"{what}: rate limited by Slack (HTTP 429)",
                                        retry_after=retry_after_seconds(headers.get("Retry-After")))
        if status in (401, 403):
            return PermanentActionError(f"{what}: HTTP {status}, the bot token was refused (auth); check "
                                        "providers.slack.bot_token in responder.yaml")
        detail = f": {error}" if error else ""
        if status >= 500:
            return RetryableActionError(f"{what}: HTTP {status} from Slack{detail}")
        if status != 200:
            return PermanentActionError(f"{what}: HTTP {status}{detail}")
        return self._classify_error(what, error, data)

    def _classify_error(self, what: str, error: str, data: dict[str, Any]) -> ActionError:
        """An HTTP 200 `{"ok": false, "error": ...}`."""
        if error in AUTH_ERRORS:
            return PermanentActionError(f"{what}: {error}: the bot token was refused (auth); check "
                                        "providers.slack.bot_token in responder.yaml")
        if error == "missing_scope":
            needed = self._clean(str(data.get("needed") or "chat:write"))
            return PermanentActionError(f"{what}: missing_scope: the bot token lacks the {needed} scope; add it to "
                                        "the Slack app and reinstall it")
        if error == "channel_not_found":
            return PermanentActionError(f"{what}: channel_not_found: no such channel, or the bot cannot see it "
                                        "(check the channel id or #name)")
        if error == "not_in_channel":
            return PermanentActionError(f"{what}: not_in_channel: invite the bot to the channel (/invite @bot)")
        if error in TRANSIENT_ERRORS:
            return RetryableActionError(f"{what}: {error} (Slack-side, temporary)")
        messages = (data.get("response_metadata") or {}).get("messages") or []
        extra = f" ({self._clean('; '.join(str(m) for m in messages[:3]))})" if messages else ""
        return PermanentActionError(f"{what}: {error or 'failed'}{extra}")
