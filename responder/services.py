"""Services: builds the stores, the incident service, the providers, the runner and the evaluator once."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from responder.actions import PROVIDERS
from responder.actions.base import ActionProvider, ProviderDeps, VendorConfig
from responder.clock import Clock
from responder.config.loader import LoadedConfig
from responder.engine.consumer import EngineConsumer
from responder.engine.evaluator import Evaluator
from responder.incidents.service import IncidentService
from responder.ingest import ADAPTERS
from responder.ingest.base import IngestAdapter
from responder.metrics import Metrics
from responder.playbooks.runner import PlaybookRunner
from responder.store.events import EventStream
from responder.store.incidents import IncidentStore
from responder.store.keys import Keys
from responder.store.provider_state import ProviderState
from responder.store.redis import Redis
from responder.store.rulestate import RuleStateStore
from responder.store.runs import RunStore
from responder.store.status import StatusStore

__all__ = ["Services", "build_providers"]


def build_providers(loaded: LoadedConfig, deps: ProviderDeps) -> tuple[dict[str, ActionProvider], dict[str, str]]:
    """Providers that can run, and for the others the reason they cannot (no credentials)."""
    built: dict[str, ActionProvider] = {}
    missing: dict[str, str] = {}
    for cls in PROVIDERS:
        config = getattr(loaded.config.providers, cls.name, None)
        if cls.Config is None:
            built[cls.name] = cls(None, deps)
        elif isinstance(config, VendorConfig) and config.has_credentials():
            built[cls.name] = cls(config, deps)
        else:
            missing[cls.name] = f"no credentials for {cls.name}"
    return built, missing


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

    @classmethod
    def build(cls, loaded: LoadedConfig, redis: Redis, http: aiohttp.ClientSession, clock: Clock, metrics: Metrics,
              *, consumer_name: str, embedded: bool = False) -> Services:
        cfg = loaded.config
        keys = Keys(cfg.redis.prefix)
        events = EventStream(redis, keys, maxlen=cfg.engine.stream_maxlen, dedup_ttl=cfg.engine.dedup_ttl)
        incidents = IncidentService(IncidentStore(redis, keys), clock)
        status = StatusStore(redis, keys)
        runs = RunStore(redis, keys)
        deps = ProviderDeps(http, clock, incidents, status, ProviderState(redis, keys),
                            public_url=cfg.server.public_url)
        providers, missing = build_providers(loaded, deps)
        runner = PlaybookRunner(runs, incidents, providers, loaded.playbooks, clock, metrics,
                                lease_seconds=cfg.engine.run_lease.total_seconds(), owner=consumer_name)
        evaluator = Evaluator(loaded.rules, RuleStateStore(redis, keys), incidents, clock, metrics,
                              start_playbook=runner.start)
        consumer = EngineConsumer(events, evaluator, runner, metrics, clock, cfg.engine, consumer_name,
                                  block_ms=0 if embedded else 1000)
        adapters = {a.source: a(getattr(cfg.ingest, a.source)) for a in ADAPTERS}
        return cls(keys, events, incidents, status, runs, runner, evaluator, consumer, adapters, missing)
