"""Prometheus metrics of the daemon itself, on a registry owned by the app (tests get a fresh one)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics", "PerRuleCounter"]


class PerRuleCounter(Collector):
    """A counter with one label whose values are many (one per rule), kept as plain numbers.

    Exposed exactly as a prometheus_client Counter with that label (`<name>_total` and `<name>_created` per value),
    but a value costs ~0.2 KB instead of a Counter child's ~1 KB (its own lock, dicts and value object): with
    10,000 rules, rule evaluations and firings took ~10 MB as Counters. Incremented from the event loop only.
    """

    def __init__(self, name: str, documentation: str, label: str, registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self._values: dict[str, list[float]] = {}  # label value -> [count, created]
        registry.register(self)

    def inc(self, value: str, amount: float = 1.0) -> None:
        entry = self._values.get(value)
        if entry is None:
            self._values[value] = [amount, time.time()]
        else:
            entry[0] += amount

    def labels(self, **labels: str) -> _PerRuleChild:
        """prometheus_client's spelling: `.labels(rule=...).inc()`."""
        return _PerRuleChild(self, labels[self.label])

    def value(self, value: str) -> float:
        entry = self._values.get(value)
        return entry[0] if entry is not None else 0.0

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, labels=[self.label])

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, (count, created) in list(self._values.items()):
            family.add_metric([value], count, created=created)
        yield family


class _PerRuleChild:
    __slots__ = ("_counter", "_value")

    def __init__(self, counter: PerRuleCounter, value: str) -> None:
        self._counter, self._value = counter, value

    def inc(self, amount: float = 1.0) -> None:
        self._counter.inc(self._value, amount)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_received = Counter("responder_events_received", "Events accepted, by source", ["source"],
                                       registry=r)
        self.events_duplicate = Counter("responder_events_duplicate", "Redeliveries answered without a new event",
                                        ["source"], registry=r)
        self.webhooks_rejected = Counter("responder_webhooks_rejected", "Webhooks refused, by source and status",
                                         ["source", "status"], registry=r)
        self.webhooks_rate_limited = Counter("responder_webhooks_rate_limited", "Webhooks refused (429) by a rate "
                                             "limit, by source and the limit's scope (ip, source)",
                                             ["source", "scope"], registry=r)
        self.rate_limit_local = Counter("responder_rate_limit_local_decisions", "Rate-limit checks decided in "
                                        "process because Redis did not answer (limits then hold per replica)",
                                        registry=r)
        self.events_spooled = Counter("responder_events_spooled", "Events accepted into the outage spool while "
                                      "Redis was unreachable", ["source"], registry=r)
        self.spool_backlog = Gauge("responder_spool_backlog", "Webhooks in this process's outage spool that the "
                                   "stream does not have yet", registry=r)
        self.spool_bytes = Gauge("responder_spool_bytes", "Bytes in this process's outage spool", registry=r)
        self.events_processed = Counter("responder_events_processed", "Events evaluated by the engine", registry=r)
        # one value per rule: thousands of rules would make thousands of Counter children
        self.rule_evaluations = PerRuleCounter("responder_rule_evaluations", "Rule evaluations", "rule", r)
        self.rule_firings = PerRuleCounter("responder_rule_firings", "Rules that fired", "rule", r)
        self.events_silenced = Counter("responder_events_silenced", "Rule firings a silence held back (the event "
                                       "is kept; no incident, no playbook)", ["rule"], registry=r)
        self.incidents = Gauge("responder_incidents", "Incidents by state", ["state"], registry=r)
        self.step_outcomes = Counter("responder_playbook_steps", "Playbook step outcomes", ["action", "outcome"],
                                     registry=r)
        self.first_action_latency = Histogram(
            "responder_webhook_to_first_action_seconds", "From webhook received to the first playbook step started",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=r)
        self.pipeline_errors = Counter("responder_pipeline_errors", "Unexpected errors inside the pipeline",
                                       ["stage"], registry=r)
        # the dead-man switch: both gauges are set at scrape time from the engine consumer
        self.last_evaluation_age = Gauge(
            "responder_last_evaluation_age_seconds", "Seconds since this process's engine last finished a tick or "
            "handled an event (since start when it has not yet)", registry=r)
        self.last_evaluation_timestamp = Gauge(
            "responder_last_evaluation_timestamp_seconds", "When this process's engine last finished a tick or "
            "handled an event (Unix time; 0: not yet)", registry=r)
        self.heartbeats = Counter("responder_heartbeats", "Heartbeat looks, by outcome: sent, fail_sent, error, "
                                  "stale (withheld), claimed_elsewhere, store_unavailable", ["outcome"], registry=r)
