"""Services: builds the stores, the incident service, the providers, the runner and the evaluator once."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from responder.actions import PROVIDERS
from responder.actions.base import ActionProvider, ProviderDeps, VendorConfig
from responder.actions.pagerduty import PagerDutyProvider
from responder.actions.slack import SlackProvider
from responder.chatops.service import ChatOps, build_chatops
from responder.clientip import ClientAddress
from responder.clock import Clock, to_ms
from responder.config.loader import LoadedConfig, secret_values
from responder.engine.consumer import EngineConsumer
from responder.engine.evaluator import Evaluator
from responder.engine.recorder import EventRecorder
from responder.engine.silences import SilenceService
from responder.incidents.pagerduty_sync import PagerDutySync
from responder.incidents.service import IncidentService
from responder.incidents.slack_sync import SlackSync
from responder.ingest import ADAPTERS
from responder.ingest.base import IngestAdapter
from responder.ingest.ratelimit import WebhookLimiter
from responder.ingest.spool import Spool, SpooledIntake
from responder.logs import get_logger
from responder.metrics import Metrics
from responder.playbooks.runner import PlaybookRunner
from responder.probes.service import ProbeService
from responder.store.events import EventStream
from responder.store.incidents import IncidentStore
from responder.store.keys import Keys
from responder.store.pagerduty import PagerDutyLinks
from responder.store.probes import ProbeStore
from responder.store.provider_state import ProviderState
from responder.store.ratelimit import TokenBuckets
from responder.store.redis import Redis
from responder.store.rulestate import RuleStateStore
from responder.store.runs import RunStore
from responder.store.silences import SilenceStore
from responder.store.status import StatusStore

__all__ = ["BuiltProviders", "Services", "build_providers"]

log = get_logger(__name__)


@dataclass
class BuiltProviders:
    #: providers that can run
    ready: dict[str, ActionProvider]
    #: for the others, why they cannot (no credentials)
    missing: dict[str, str]
    #: unconfigured providers that can still describe a step (dry-run shows the vendor's URLs)
    planners: dict[str, ActionProvider]


def build_providers(loaded: LoadedConfig, deps: ProviderDeps) -> BuiltProviders:
    out = BuiltProviders({}, {}, {})
    for cls in PROVIDERS:
        config = getattr(loaded.config.providers, cls.name, None)
        if cls.Config is None:
            out.ready[cls.name] = cls(None, deps)
        elif isinstance(config, VendorConfig) and config.has_credentials():
            out.ready[cls.name] = cls(config, deps)
        else:
            out.missing[cls.name] = f"no credentials for {cls.name}"
            try:
                out.planners[cls.name] = cls(config, deps)
            except Exception:  # a client that cannot even be built without credentials plans generically
                log.debug("provider cannot plan without credentials", provider=cls.name)
    return out


@dataclass
class Services:
    keys: Keys
    events: EventStream
    incidents: IncidentService
    status: StatusStore
    runs: RunStore
    runner: PlaybookRunner
    evaluator: Evaluator
    consumer: EngineConsumer
    adapters: dict[str, IngestAdapter]
    providers_missing: dict[str, str]
    probes: ProbeService
    #: silences and maintenance windows: the API, the Slack commands and the evaluator use it
    silences: SilenceService = field(kw_only=True)
    #: keeps each incident's Slack message in step with its timeline (when Slack is configured)
    slack_sync: SlackSync | None = None
    #: PagerDuty two-way: webhooks ack/resolve their incident, responder's acks/resolves reach the alert
    pagerduty_sync: PagerDutySync | None = None
    #: Slack slash commands, buttons, approvals and the audit log
    chatops: ChatOps = field(kw_only=True)
    #: ingest's way into the stream: straight to Redis, or through the outage spool while Redis is unreachable
    intake: SpooledIntake = field(kw_only=True)
    #: webhook rate limits (ingest.rate_limits), checked before a webhook's body is read
    rate_limits: WebhookLimiter = field(kw_only=True)
    #: loop time at which a graceful shutdown (SIGTERM) began: its deadline counts from there
    shutdown_started: float | None = field(default=None, kw_only=True)

    @classmethod
    def build(cls, loaded: LoadedConfig, redis: Redis, http: aiohttp.ClientSession, clock: Clock, metrics: Metrics,
              *, consumer_name: str, embedded: bool = False, spool: Spool | None = None) -> Services:
        cfg = loaded.config
        keys = Keys(cfg.redis.prefix)
        events = EventStream(redis, keys, maxlen=cfg.engine.stream_maxlen, dedup_ttl=cfg.engine.dedup_ttl)
        incidents = IncidentService(IncidentStore(redis, keys), clock)
        status = StatusStore(redis, keys)
        runs = RunStore(redis, keys)
        probes = ProbeService(loaded.probes, loaded.disabled_probes, ProbeStore(redis, keys), events, clock,
                              cfg.probing, owner=consumer_name)
        deps = ProviderDeps(http, clock, incidents, status, ProviderState(redis, keys), probes=probes,
                            public_url=cfg.server.public_url)
        providers = build_providers(loaded, deps)
        runner = PlaybookRunner(runs, incidents, providers.ready, loaded.playbooks, clock, metrics,
                                lease_seconds=cfg.engine.run_lease.total_seconds(), owner=consumer_name,
                                planners=providers.planners, automation=cfg.automation,
                                secrets=secret_values(cfg), public_url=cfg.server.public_url)
        silences = SilenceService(SilenceStore(redis, keys), clock, metrics, cfg.silences)
        evaluator = Evaluator(loaded.rules, RuleStateStore(redis, keys), incidents, clock, metrics,
                              start_playbook=runner.start, silences=silences)
        consumer = EngineConsumer(events, evaluator, runner, metrics, clock, cfg.engine, consumer_name,
                                  block_ms=0 if embedded else 1000)
        consumer.recorder = EventRecorder.from_config(cfg.record, loaded.path.parent if loaded.path else None)
        adapters = {a.source: a(getattr(cfg.ingest, a.source)) for a in ADAPTERS}
        slack = providers.ready.get("slack")
        slack_sync = SlackSync(slack, incidents, deps.state) if isinstance(slack, SlackProvider) else None
        if slack_sync is not None:
            slack_sync.attach()
        pagerduty = providers.ready.get("pagerduty")
        pagerduty_sync = PagerDutySync(incidents, deps.state, PagerDutyLinks(redis, keys),
                                       pagerduty if isinstance(pagerduty, PagerDutyProvider) else None)
        pagerduty_sync.attach()
        # inbound PagerDuty events update their incident in the engine path, just before the rules see them
        evaluator.before_rules.append(pagerduty_sync.before_rules)
        chatops = build_chatops(loaded, redis=redis, keys=keys, http=http, clock=clock, incidents=incidents,
                                runner=runner, runs=runs, status=status, providers=providers.ready,
                                planners=providers.planners, silences=silences)
        limits = cfg.ingest.rate_limits
        rate_limits = WebhookLimiter(
            limits, ClientAddress(tuple(cfg.server.trusted_proxies), cfg.server.client_ip_header),
            TokenBuckets(redis, now_ms=lambda: to_ms(clock.now()), timeout=limits.store_timeout.total_seconds()),
            keys, metrics)
        return cls(keys, events, incidents, status, runs, runner, evaluator, consumer, adapters, providers.missing,
                   probes, slack_sync, pagerduty_sync=pagerduty_sync, silences=silences, chatops=chatops,
                   intake=SpooledIntake(events, spool, metrics=metrics), rate_limits=rate_limits)
