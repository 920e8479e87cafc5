"""ResponderConfig: the root of responder.yaml."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from responder.actions.fly import FlyConfig
from responder.actions.http import HttpConfig
from responder.actions.kubernetes import KubernetesConfig
from responder.actions.pagerduty import PagerDutyConfig
from responder.actions.railway import RailwayConfig
from responder.actions.shell import ShellConfig
from responder.actions.slack import SlackConfig
from responder.actions.statuspage import StatuspageConfig
from responder.actions.vercel import VercelConfig
from responder.chatops.config import ChatOpsConfig
from responder.clientip import Cidrs
from responder.config.base import Duration, StrictModel
from responder.engine.recorder import RecordConfig
from responder.engine.silences import ConfiguredSilences
from responder.heartbeat import HeartbeatConfig
from responder.ingest.alertmanager import AlertmanagerConfig
from responder.ingest.grafana import GrafanaConfig
from responder.ingest.pagerduty import PagerDutyWebhookConfig
from responder.ingest.ratelimit import RateLimitsConfig
from responder.ingest.sentry import SentryConfig
from responder.ingest.spool import SpoolConfig
from responder.ingest.uptimerobot import UptimeRobotConfig
from responder.probes.model import ProbeSettings

__all__ = [
    "ApiTokens",
    "AutomationConfig",
    "EngineConfig",
    "IngestConfig",
    "ProvidersConfig",
    "RedisConfig",
    "RemediationBudget",
    "ResponderConfig",
    "ServerConfig",
    "StatusComponent",
    "StatusPageConfig",
]


class ApiTokens(StrictModel):
    read: SecretStr | None = Field(default=None, description="bearer token for GET /api/v1 (unset: reads are open)")
    write: SecretStr | None = Field(default=None, description="bearer token for POST /api/v1 (unset: writes refused)")


class ServerConfig(StrictModel):
    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = Field(default=None, description="how people reach this daemon (links in messages)")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="larger webhook bodies are refused (413)")
    api_tokens: ApiTokens = Field(default_factory=ApiTokens)
    trusted_proxies: Cidrs = Field(
        default_factory=list, description="the proxies in front of responder (ingress, load balancer), as CIDRs: "
        "only from these is `client_ip_header` believed (the client's address for rate limits); empty: the TCP "
        "peer is the client")
    client_ip_header: str = Field(
        default="X-Forwarded-For", pattern=r"^[A-Za-z0-9-]+$",
        description="where a trusted proxy names the client: X-Forwarded-For (read from the right, past the "
        "trusted hops) or a header the proxy sets alone, such as Fly-Client-IP or X-Real-IP")
    shutdown_timeout: Duration = Field(
        default=timedelta(seconds=25), description="on SIGTERM: stop listening, finish requests, events and steps "
        "in hand, hand unfinished runs back to the other replicas, and exit within this (Kubernetes waits 30s "
        "before SIGKILL)")


class RedisConfig(StrictModel):
    url: str | None = Field(default=None, description="redis:// or rediss:// URL; unset = embedded, not durable")
    socket_timeout: Duration = Field(default=timedelta(seconds=5))
    connect_timeout: Duration = Field(default=timedelta(seconds=2))
    retries: int = Field(default=3, ge=0, le=20)
    max_connections: int = Field(default=64, ge=4)
    prefix: str = Field(default="responder", pattern=r"^[A-Za-z0-9_.\-]+$")


class IngestConfig(StrictModel):
    sentry: SentryConfig = Field(default_factory=SentryConfig)
    grafana: GrafanaConfig = Field(default_factory=GrafanaConfig)
    alertmanager: AlertmanagerConfig = Field(default_factory=AlertmanagerConfig)
    uptimerobot: UptimeRobotConfig = Field(default_factory=UptimeRobotConfig)
    pagerduty: PagerDutyWebhookConfig = Field(default_factory=PagerDutyWebhookConfig)
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig, description="token buckets per client "
                                          "address and per source, shared by the replicas through Redis")


class ProvidersConfig(StrictModel):
    http: HttpConfig = Field(default_factory=HttpConfig)
    railway: RailwayConfig = Field(default_factory=RailwayConfig)
    fly: FlyConfig = Field(default_factory=FlyConfig)
    vercel: VercelConfig = Field(default_factory=VercelConfig)
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    pagerduty: PagerDutyConfig = Field(default_factory=PagerDutyConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    statuspage: StatuspageConfig = Field(default_factory=StatuspageConfig)
    shell: ShellConfig = Field(default_factory=ShellConfig)


class StatusComponent(StrictModel):
    id: str
    name: str
    description: str = ""


class StatusPageConfig(StrictModel):
    title: str = "Service status"
    components: list[StatusComponent] = Field(default_factory=list)


class EngineConfig(StrictModel):
    tick: Duration = Field(default=timedelta(seconds=1), description="how often timers (`for`, windows) are checked")
    dedup_ttl: Duration = Field(default=timedelta(hours=24), description="how long a redelivery is recognised")
    stream_maxlen: int = Field(default=100_000, ge=1000, description="the event stream keeps this many entries; "
                               "when the engine's backlog reaches 90% of it, webhooks are refused (503, Retry-After) "
                               "so that no accepted event is trimmed before it is handled")
    claim_idle: Duration = Field(default=timedelta(seconds=30), description="take over a dead consumer's events")
    max_deliveries: int = Field(default=5, ge=1, description="then the event is dead-lettered")
    run_lease: Duration = Field(default=timedelta(seconds=30), description="a crashed replica's runs resume after")


class RemediationBudget(StrictModel):
    """At most `max` automated changes of one kind to one target (service, app, deployment) per `per`."""

    max: int = Field(ge=0, description="0 forbids the kind of change altogether")
    per: Duration


def _default_budgets() -> dict[str, RemediationBudget]:
    half_hour = timedelta(minutes=30)
    return {"rollback": RemediationBudget(max=1, per=half_hour), "restart": RemediationBudget(max=3, per=half_hour),
            "redeploy": RemediationBudget(max=3, per=half_hour), "promote": RemediationBudget(max=1, per=half_hour),
            "scale": RemediationBudget(max=5, per=half_hour)}


class AutomationConfig(StrictModel):
    """Guard rails for automated changes, shared by every replica through Redis."""

    dry_run: bool = Field(default=False, description="render and record every step, call no vendor")
    budgets: dict[str, RemediationBudget] = Field(
        default_factory=_default_budgets,
        description="per kind of change (rollback, restart, redeploy, promote, scale); kinds not listed are "
                    "unlimited. Listing a kind replaces its default; the other defaults stay.")

    @field_validator("budgets", mode="after")
    @classmethod
    def _keep_defaults(cls, value: dict[str, RemediationBudget]) -> dict[str, RemediationBudget]:
        return {**_default_budgets(), **value}


class ResponderConfig(StrictModel):
    """responder.yaml"""

    server: ServerConfig = Field(default_factory=ServerConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    providers: ProvidersConfig = Field(default_factory=ProvidersConfig)
    status_page: StatusPageConfig = Field(default_factory=StatusPageConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    automation: AutomationConfig = Field(default_factory=AutomationConfig)
    rules_dirs: list[str] = Field(default_factory=lambda: ["rules"], description="relative to this file")
    playbook_dirs: list[str] = Field(default_factory=lambda: ["playbooks"], description="relative to this file")
    probe_dirs: list[str] = Field(default_factory=lambda: ["probes"], description="relative to this file")
    probing: ProbeSettings = Field(default_factory=ProbeSettings, description="how each replica runs probes")
    chatops: ChatOpsConfig = Field(default_factory=ChatOpsConfig, description="Slack slash command and buttons")
    silences: ConfiguredSilences = Field(default_factory=list, description="fixed silences and weekly maintenance "
                                         "windows (read-only at runtime; more through /api/v1/silences)")
    record: RecordConfig = Field(default_factory=RecordConfig, description="append every handled event to a "
                                 "JSONL file (`responder replay` reads it)")
    spool: SpoolConfig = Field(default_factory=SpoolConfig, description="while Redis is unreachable, accepted "
                               "webhooks wait in this on-disk spool and are replayed in order when it is back")
    heartbeat: HeartbeatConfig = Field(default_factory=HeartbeatConfig, description="dead-man switch: a ping to "
                                       "a Healthchecks-style URL or Slack webhook while the engine is evaluating")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
