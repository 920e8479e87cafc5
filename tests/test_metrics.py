"""PerRuleCounter reads on /metrics exactly as a prometheus_client Counter with the same label would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from responder.metrics import PerRuleCounter


def exposition(registry: CollectorRegistry) -> list[str]:
    # the `_created` values are timestamps: compare their presence, not their value
    return [line.rsplit(" ", 1)[0] if "_created{" in line else line
            for line in generate_latest(registry).decode().splitlines()]


def test_per_rule_counter_reads_as_a_counter() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = PerRuleCounter("responder_rule_firings", "Rules that fired", "rule", ours)
    plain = Counter("responder_rule_firings", "Rules that fired", ["rule"], registry=theirs)
    assert exposition(ours) == exposition(theirs)  # no rule yet: the family's HELP and TYPE only
    for rule in ("a", "b", "a", 'q"uote'):
        fast.labels(rule=rule).inc()
        plain.labels(rule=rule).inc()
    fast.inc("b", 2)
    plain.labels(rule="b").inc(2)
    assert exposition(ours) == exposition(theirs)
    assert ours.get_sample_value("responder_rule_firings_total", {"rule": "b"}) == 3.0
    assert fast.value("a") == 2.0 and fast.value("none") == 0.0
