"""Dead-man switch: responder's own heartbeat, sent only while its engine is evaluating.

    heartbeat:
      url: ${HEARTBEAT_URL:-}        # a Healthchecks ping URL, a Slack incoming webhook, any HTTP endpoint
      format: healthchecks           # healthchecks | slack | json
      interval: 1m
      max_evaluation_age: 1m

The heartbeat proves that the ENGINE evaluates, not merely that the process is up: at each interval a
replica pings only when its engine finished a tick or handled an event less than `max_evaluation_age`
ago (the consumer's `last_evaluation`). When Redis is down the engine cannot evaluate, so the pings stop
and the far end (Healthchecks' grace period, a person watching a channel) notices; a process that died
stops them too. With `on_stale: fail` a stale replica also says so (Healthchecks' `<url>/fail`, a Slack
message, a JSON body with `"status": "stale"`) once per interval, when no replica proved evaluation in it.

Replicas sharing Redis send one ping per interval between them: interval n is claimed with
`SET <prefix>:{hb}:heartbeat:<n> <owner> NX PX 2*interval` by the first fresh replica, which sends it. A
stale replica never claims at the start of an interval (a fresh one must be able to), so with `on_stale:
fail` it looks again halfway through: still stale and the interval unclaimed, it claims it and reports.

The URL (a Healthchecks check id, a Slack webhook) and the headers are secrets: they are redacted from
logs and errors (responder.config.loader.secret_values) and never logged; logs name the target's host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from pydantic import Field, SecretStr, field_validator, model_validator

from responder.clock import Clock, to_ms
from responder.config.base import Duration, StrictModel, format_duration
from responder.errors import StoreUnavailable
from responder.logs import get_logger
from responder.metrics import Metrics
from responder.store.keys import Keys
from responder.store.redis import Redis, RedisError

__all__ = ["EngineState", "Heartbeat", "HeartbeatConfig", "Outcome", "evaluation_age"]

log = get_logger(__name__)

#: what one look at an interval ended in (the `outcome` label of responder_heartbeats_total)
Outcome = Literal["sent", "fail_sent", "error", "stale", "claimed_elsewhere", "store_unavailable"]


class EngineState(Protocol):
    """What the heartbeat reads of the engine consumer (responder.engine.consumer.EngineConsumer)."""

    @property
    def started(self) -> datetime: ...

    @property
    def last_evaluation(self) -> datetime | None:
        """When a tick last finished or an event was last handled; None: not yet."""


def evaluation_age(engine: EngineState, now: datetime) -> float:
    """Seconds since the engine last evaluated (since it started when it has not yet)."""
    return max(0.0, (now - (engine.last_evaluation or engine.started)).total_seconds())


class HeartbeatConfig(StrictModel):
    """`heartbeat:` in responder.yaml: the dead-man switch."""

    url: SecretStr | None = Field(
        default=None, description="where to send the heartbeat: a Healthchecks-style ping URL, a Slack incoming "
                                  "webhook (format: slack) or any http(s) endpoint; a secret, never logged. Empty "
                                  "(an unset ${VAR:-}): no heartbeat")
    format: Literal["healthchecks", "slack", "json"] = Field(
        default="healthchecks", description="healthchecks: a plain request (failure: <url>/fail); slack: POST "
                                            "{\"text\": ...}; json: POST {\"status\": \"ok\"|\"stale\", ...}")
    method: Literal["GET", "POST"] | None = Field(
        default=None, description="default GET for healthchecks (POST sends a one-line summary as the body); "
                                  "slack and json always POST")
    interval: Duration = Field(default=timedelta(minutes=1), description="one heartbeat per interval across all "
                                                                          "replicas sharing Redis")
    timeout: Duration = Field(default=timedelta(seconds=10), description="per request; at most the interval")
    max_evaluation_age: Duration = Field(
        default=timedelta(minutes=1), description="no heartbeat when the engine has not finished a tick or handled "
                                                  "an event for this long (keep it well above engine.tick)")
    on_stale: Literal["skip", "fail"] = Field(
        default="skip", description="skip: send nothing, the far end notices the silence; fail: say so once per "
                                    "interval (healthchecks: <url>/fail) when no replica is evaluating")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="headers added to every request, "
                                                                             "e.g. Authorization; secrets")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        # the messages never quote the value: it is a secret
        text = value.get_secret_value() if value is not None else ""
        if text and urlsplit(text).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        if text and not urlsplit(text).hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("interval", "timeout", "max_evaluation_age")
    @classmethod
    def _at_least_a_second(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HeartbeatConfig:
        if self.timeout > self.interval:
            raise ValueError(f"heartbeat.timeout ({format_duration(self.timeout)}) must not exceed heartbeat.interval "
                             f"({format_duration(self.interval)})")
        if self.format != "healthchecks" and self.method == "GET":
            raise ValueError(f"heartbeat.method GET cannot carry a {self.format} body: use POST (the default)")
        host = urlsplit(self.url.get_secret_value()).hostname if self.url is not None else None
        if host == "hooks.slack.com" and self.format != "slack":
            raise ValueError("heartbeat.url is a Slack incoming webhook: set heartbeat.format: slack")
        return self

    @property
    def enabled(self) -> bool:
        return self.url is not None and bool(self.url.get_secret_value())


class Heartbeat:
    """One replica's heartbeat: `ping()` at the start of each interval, `report_stale()` halfway (on_stale: fail)."""

    def __init__(self, config: HeartbeatConfig, redis: Redis, keys: Keys, http: aiohttp.ClientSession, clock: Clock,
                 metrics: Metrics, *, owner: str, engine: EngineState) -> None:
        assert config.url is not None
        self.config = config
        self.redis = redis
        self.keys = keys
        self.http = http
        self.clock = clock
        self.metrics = metrics
        self.owner = owner
        #: this process's engine consumer: when it last finished a tick or handled an event
        self.engine = engine
        self._url = config.url.get_secret_value()
        self.interval_ms = max(1, round(config.interval.total_seconds() * 1000))
        #: the host alone is what logs show of the target
        self.target = urlsplit(self._url).hostname or "?"

    # -- the state of this replica's engine ------------------------------------------------------------

    def evaluation_age(self) -> float:
        return evaluation_age(self.engine, self.clock.now())

    def fresh(self) -> bool:
        return self.engine.last_evaluation is not None and \
            self.evaluation_age() < self.config.max_evaluation_age.total_seconds()

    def slot(self) -> int:
        return to_ms(self.clock.now()) // self.interval_ms

    # -- one look at an interval ----------------------------------------------------------------------

    async def ping(self) -> Outcome:
        """At the start of an interval: when this engine is fresh, claim the interval and send the heartbeat."""
        if not self.fresh():
            outcome: Outcome = "stale"
            log.warning("heartbeat withheld: the engine is not evaluating", target=self.target,
                        evaluation_age_seconds=round(self.evaluation_age(), 1),
                        max_evaluation_age_seconds=self.config.max_evaluation_age.total_seconds())
        else:
            outcome = await self._claim_and_send(self.slot(), stale=False)
        return self._count(outcome)

    async def report_stale(self, slot: int) -> Outcome:
        """Halfway through interval `slot` (on_stale: fail): evaluating again -> as `ping`; still stale and no
        replica claimed the interval -> claim it and send the failure. Redis unreachable -> send it unclaimed
        (this replica cannot tell whether another one is evaluating: it reports its own state)."""
        return self._count(await self._claim_and_send(slot, stale=not self.fresh()))

    async def _claim_and_send(self, slot: int, *, stale: bool) -> Outcome:
        try:
            claimed = bool(await self.redis.set(self.keys.heartbeat(slot), f"{'stale' if stale else 'ok'}:{self.owner}",
                                                nx=True, px=2 * self.interval_ms))
        except (RedisError, OSError, StoreUnavailable) as exc:
            if not stale:
                log.warning("heartbeat skipped: the store is unavailable", target=self.target,
                            error=exc.__class__.__name__)
                return "store_unavailable"
            claimed = True
        if not claimed:
            return "claimed_elsewhere"
        return await self._send(stale=stale)

    async def _send(self, *, stale: bool) -> Outcome:
        age = self.evaluation_age()
        method, url, body, content_type = self._request(stale=stale, age=age)
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        if content_type:
            headers["Content-Type"] = content_type
        timeout = aiohttp.ClientTimeout(total=self.config.timeout.total_seconds())
        try:
            async with self.http.request(method, url, data=body, headers=headers, timeout=timeout) as reply:
                await reply.read()
                status = reply.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            # aiohttp's messages can quote the URL: only the class is logged (redacted all the same)
            log.warning("heartbeat not delivered", target=self.target, stale=stale,
                        error=exc.__class__.__name__)
            return "error"
        if not 200 <= status < 300:
            log.warning("heartbeat refused", target=self.target, stale=stale, status=status)
            return "error"
        if stale:
            log.warning("heartbeat: reported that the engine is not evaluating", target=self.target,
                        evaluation_age_seconds=round(age, 1))
            return "fail_sent"
        log.debug("heartbeat sent", target=self.target, evaluation_age_seconds=round(age, 3))
        return "sent"

    def _request(self, *, stale: bool, age: float) -> tuple[str, str, bytes | None, str | None]:
        """(method, url, body, content type) for this format."""
        limit = format_duration(self.config.max_evaluation_age)
        last = self.engine.last_evaluation
        if last is None:
            summary = f"responder {self.owner} has not evaluated since it started {age:.0f}s ago (limit {limit})"
        elif stale:
            summary = f"responder {self.owner} has not evaluated for {age:.0f}s (limit {limit})"
        else:
            summary = f"responder {self.owner} is evaluating (last evaluation {age:.1f}s ago)"
        fmt = self.config.format
        if fmt == "healthchecks":
            url = _fail_url(self._url) if stale else self._url
            if (self.config.method or "GET") == "GET":
                return "GET", url, None, None
            return "POST", url, summary.encode(), "text/plain; charset=utf-8"
        if fmt == "slack":
            text = f":rotating_light: {summary}: incidents are not being opened" if stale else summary
            return "POST", self._url, json.dumps({"text": text}).encode(), "application/json"
        body: dict[str, Any] = {"status": "stale" if stale else "ok", "source": "responder", "replica": self.owner,
                                "last_evaluation": last.isoformat() if last else None,
                                "last_evaluation_age_seconds": round(age, 3), "summary": summary,
                                "at": self.clock.now().isoformat()}
        return "POST", self._url, json.dumps(body).encode(), "application/json"

    def _count(self, outcome: Outcome) -> Outcome:
        self.metrics.heartbeats.labels(outcome=outcome).inc()
        return outcome

    # -- the background loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """At each interval boundary `ping`; with on_stale: fail, a stale look is followed by `report_stale`
        halfway through the interval. Never stops on an error (only on cancellation)."""
        while True:
            now_ms = to_ms(self.clock.now())
            await asyncio.sleep(((now_ms // self.interval_ms + 1) * self.interval_ms - now_ms) / 1000)
            slot = self.slot()
            try:
                outcome = await self.ping()
                if outcome == "stale" and self.config.on_stale == "fail":
                    await asyncio.sleep(self.interval_ms / 2000)
                    await self.report_stale(slot)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the dead-man switch must outlive anything one beat runs into
                self.metrics.pipeline_errors.labels(stage="heartbeat").inc()
                log.error("heartbeat failed unexpectedly", error=exc.__class__.__name__)

    @contextlib.asynccontextmanager
    async def running(self, *, background: bool) -> AsyncIterator[None]:
        """Run the loop while inside (only with `background`), cancel it on the way out."""
        task = asyncio.create_task(self.run(), name="heartbeat") if background else None
        if background:
            log.info("heartbeat on", target=self.target, format=self.config.format,
                     interval=format_duration(self.config.interval),
                     max_evaluation_age=format_duration(self.config.max_evaluation_age),
                     on_stale=self.config.on_stale)
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _fail_url(url: str) -> str:
    """Healthchecks' failure signal: `/fail` appended to the ping URL's path (its query string kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))
