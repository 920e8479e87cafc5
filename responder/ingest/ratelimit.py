"""Webhook rate limits (ingest.rate_limits): a token bucket per client address and, optionally, per source.

Checked before a webhook's body is read or verified, so a flood is refused at the cost of one batched Redis
call: 429 JSON `{"error", "field"}` naming the limit, with `Retry-After`. Every replica shares the buckets
through Redis (responder.store.ratelimit); while Redis does not answer, each replica goes on limiting with its
own copy (fail open: an outage never refuses webhooks wholesale).

Counted: `/hooks/{source}` and `/hooks/{source}/{token}` of a known source (an unknown one is a 404 that takes
nothing) and the Slack routes (`/slack/commands`, `/slack/interactions`, as source `slack`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv6Address, ip_network

from aiohttp import web
from pydantic import Field, field_validator

from responder.clientip import Cidrs, ClientAddress, IPAddress, parse_address
from responder.config.base import Duration, StrictModel, format_duration
from responder.errors import RateLimited
from responder.ingest import ADAPTERS
from responder.logs import get_logger
from responder.metrics import Metrics
from responder.store.keys import Keys
from responder.store.ratelimit import Limit, TokenBuckets

__all__ = ["RATE_LIMITED_SOURCES", "RateLimit", "RateLimitsConfig", "WebhookLimiter"]

log = get_logger(__name__)

#: the sources a limit can be set for: every webhook adapter, and Slack's commands and buttons
RATE_LIMITED_SOURCES = (*sorted(a.source for a in ADAPTERS), "slack")
#: how often the same bucket's refusals are logged at most (the counter counts each one)
LOG_EVERY_SECONDS = 60.0


class RateLimit(StrictModel):
    """`requests` per `per` on average, up to `burst` at once (a token bucket: `burst` tokens, refilled evenly)."""

    requests: int = Field(ge=1, description="requests allowed per `per`")
    per: Duration = Field(description="the period, e.g. 1m")
    burst: int | None = Field(default=None, ge=1, description="the most taken at once after a quiet spell "
                                                              "(the bucket's size; default: `requests`)")

    @field_validator("per", mode="after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("the period must be longer than 0s")
        return value

    def bucket(self) -> Limit:
        return Limit.of(self.requests, self.per.total_seconds(), self.burst)

    def describe(self) -> str:
        return f"{self.requests} requests per {format_duration(self.per)}"


def _per_ip_default() -> RateLimit:
    return RateLimit(requests=100, per=timedelta(minutes=1))


class RateLimitsConfig(StrictModel):
    """Token-bucket limits on incoming webhooks, shared by every replica through Redis."""

    enabled: bool = Field(default=True, description="false: no webhook is ever rate limited")
    per_ip: RateLimit | None = Field(
        default_factory=_per_ip_default,
        description="per client address, over all webhook sources together (null: none). The client is the TCP "
                    "peer, or behind server.trusted_proxies the address the proxy names; IPv6 clients count per "
                    "`ipv6_prefix` network")
    per_source: RateLimit | None = Field(
        default=None,
        description="per source (sentry, grafana, ...), over all clients together; null (the default): none. A "
                    "safety valve for the engine against a vendor's storm, not an abuse defence: anybody can reach "
                    "a source's URL, so set it above the vendor's peak")
    sources: dict[str, RateLimit | None] = Field(
        default_factory=dict,
        description="per-source limits replacing `per_source` for that source (null: that source has none), e.g. "
                    "{sentry: {requests: 600, per: 1m}}; sources: " + ", ".join(RATE_LIMITED_SOURCES),
        json_schema_extra={"propertyNames": {"enum": list(RATE_LIMITED_SOURCES)}})
    exempt: Cidrs = Field(default_factory=list, description="client addresses never rate limited (e.g. your own "
                                                            "Alertmanager), as CIDRs")
    ipv6_prefix: int = Field(default=64, ge=32, le=128, description="IPv6 clients share one bucket per network of "
                                                                    "this prefix length (a host usually has a /64)")
    store_timeout: Duration = Field(default=timedelta(milliseconds=500),
                                    description="a check Redis has not answered by then is decided in process")

    @field_validator("sources", mode="after")
    @classmethod
    def _known_sources(cls, value: dict[str, RateLimit | None]) -> dict[str, RateLimit | None]:
        unknown = sorted(set(value) - set(RATE_LIMITED_SOURCES))
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r} (known: {', '.join(RATE_LIMITED_SOURCES)})")
        return value


@dataclass(frozen=True)
class _Rule:
    config: RateLimit
    limit: Limit
    field: str  # where it is configured, named in the 429


class WebhookLimiter:
    """Finds the client, takes its buckets, and refuses with RateLimited when one is empty."""

    def __init__(self, config: RateLimitsConfig, client: ClientAddress, buckets: TokenBuckets, keys: Keys,
                 metrics: Metrics) -> None:
        self.config = config
        self.client = client
        self.buckets = buckets
        self.keys = keys
        self.metrics = metrics
        field = "ingest.rate_limits"
        self.per_ip = _Rule(config.per_ip, config.per_ip.bucket(), f"{field}.per_ip") if config.per_ip else None
        self.per_source: dict[str, _Rule | None] = {}
        for source in RATE_LIMITED_SOURCES:
            chosen, where = config.per_source, f"{field}.per_source"
            if source in config.sources:
                chosen, where = config.sources[source], f"{field}.sources.{source}"
            self.per_source[source] = _Rule(chosen, chosen.bucket(), where) if chosen else None
        self._logged: dict[str, float] = {}
        self._proxy_hinted = False

    @property
    def active(self) -> bool:
        return self.config.enabled and (self.per_ip is not None or any(self.per_source.values()))

    def client_key(self, address: IPAddress | None) -> str:
        """The per-IP bucket's name: the address, an IPv6 client's /ipv6_prefix network, or `unknown`."""
        if address is None:
            return "unknown"
        if isinstance(address, IPv6Address) and self.config.ipv6_prefix < 128:
            return str(ip_network(f"{address}/{self.config.ipv6_prefix}", strict=False))
        return str(address)

    async def check(self, request: web.Request, source: str) -> None:
        """Take this request's tokens; raise RateLimited (429, Retry-After) when a bucket is empty."""
        if not self.active:
            return
        address = self.client.resolve(request.remote, request.headers)
        if address is not None and any(address in network for network in self.config.exempt):
            return
        if not self._proxy_hinted and self.client.header in request.headers:
            self._hint_proxy(parse_address(request.remote))
        rules: list[tuple[_Rule, str, str]] = []  # (rule, bucket key, scope)
        if self.per_ip is not None:
            rules.append((self.per_ip, self.keys.rate_limit_ip(self.client_key(address)), "ip"))
        source_rule = self.per_source.get(source)
        if source_rule is not None:
            rules.append((source_rule, self.keys.rate_limit_source(source), "source"))
        if not rules:
            return
        decision = await self.buckets.take([(key, rule.limit) for rule, key, _scope in rules])
        if decision.local:
            self.metrics.rate_limit_local.inc()
        if decision.allowed:
            return
        rule, key, scope = rules[decision.refused_by or 0]
        retry_after = max(1, math.ceil(decision.retry_after))
        self.metrics.webhooks_rate_limited.labels(source=source, scope=scope).inc()
        self.metrics.webhooks_rejected.labels(source=source, status="429").inc()
        who = f"from {self.client_key(address)}" if scope == "ip" else f"to source {source!r}"
        self._log(key, source=source, scope=scope, client=str(address), limit=rule.config.describe())
        raise RateLimited(f"rate limit exceeded: more than {rule.config.describe()} {who} ({rule.field}); "
                          f"retry in {retry_after}s", rule.field, retry_after)

    def _log(self, key: str, **fields: str) -> None:
        now = time.monotonic()
        if now - self._logged.get(key, -LOG_EVERY_SECONDS) < LOG_EVERY_SECONDS:
            return
        if len(self._logged) >= 1024:
            self._logged.clear()
        self._logged[key] = now
        log.info("webhooks rate limited", **fields)

    def _hint_proxy(self, peer: IPAddress | None) -> None:
        """Once per process: a proxy's header from a private peer that server.trusted_proxies does not list."""
        if peer is None or self.client.is_trusted(peer) or not (peer.is_private or peer.is_loopback):
            return
        self._proxy_hinted = True
        log.warning("webhooks carry a proxy's client-address header but the proxy is not trusted: every client "
                    "behind it shares one rate-limit bucket", header=self.client.header, peer=str(peer),
                    hint="list the proxy's addresses in server.trusted_proxies")
