"""Rule evaluation on a real Redis with the fake clock: `for`, resets, windows, grouping, restarts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from responder.clock import FakeClock
from responder.events import Event, EventStatus, fingerprint

FOR_RULE = """
rules:
  - id: api-health-failing
    match: {source: probe, name: api-health}
    when: {status: failing}
    for: 5m
    severity: critical
    group_by: [service]
"""


def probe(clock: FakeClock, status: str, *, service: str = "api", instance: str = "a", value: float = 0.1) -> Event:
    labels = {"instance": instance}
    return Event(source="probe", name="api-health", service=service, status=EventStatus(status), value=value,
                 labels=labels, fingerprint=fingerprint("probe", "api-health", labels), occurred_at=clock.now(),
                 received_at=clock.now(), delivery_id=f"probe:{clock.now().isoformat()}:{instance}")


async def incidents(services: Any) -> list[Any]:
    return await services.incidents.store.list()


async def test_for_five_minutes_fires_on_the_tick_without_a_new_event(make_config: Any, make_app: Any,
                                                                     clock: FakeClock) -> None:
    _, services = await make_app(make_config({"rules/r.yaml": FOR_RULE}))
    ev = services.evaluator
    for second in range(0, 300, 30):  # failing results every 30 s from 0:00 to 4:30
        clock.set(FakeClock().now() + timedelta(seconds=second))
        [decision] = await ev.handle(probe(clock, "failing"))
        assert decision.state == "pending"
    clock.set(FakeClock().now() + timedelta(minutes=4, seconds=59))
    assert await ev.tick() == []  # the timer is not due yet
    assert await incidents(services) == []
    clock.advance(1)  # 5:00, and no new event
    [decision] = await ev.tick()
    assert decision.result == "fire" and decision.incident_id is not None
    [incident] = await incidents(services)
    assert incident.rule_id == "api-health-failing" and incident.group == {"service": "api"}
    assert incident.created_at == clock.now()


async def test_an_ok_event_resets_the_for_timer(make_config: Any, make_app: Any, clock: FakeClock) -> None:
    _, services = await make_app(make_config({"rules/r.yaml": FOR_RULE}))
    ev = services.evaluator
    start = clock.now()
    await ev.handle(probe(clock, "failing"))
    clock.set(start + timedelta(minutes=3))
    [decision] = await ev.handle(probe(clock, "ok"))
    assert decision.result == "reset" and decision.state == "inactive"
    clock.set(start + timedelta(minutes=3, seconds=1))
    await ev.handle(probe(clock, "failing"))  # pending again, from 3:01
    clock.set(start + timedelta(minutes=5))
    assert await ev.tick() == []
    assert await incidents(services) == []
    clock.set(start + timedelta(minutes=8))
    assert await ev.tick() == []
    clock.set(start + timedelta(minutes=8, seconds=1))
    [decision] = await ev.tick()
    assert decision.result == "fire"
    assert len(await incidents(services)) == 1


async def test_firing_again_appends_and_recovery_resolves(make_config: Any, make_app: Any, clock: FakeClock) -> None:
    rules = FOR_RULE.replace("for: 5m", "for: 0s")
    _, services = await make_app(make_config({"rules/r.yaml": rules}))
    ev = services.evaluator
    [first] = await ev.handle(probe(clock, "failing", instance="a"))
    [second] = await ev.handle(probe(clock, "failing", instance="b"))  # same group, another series
    assert first.result == "fire" and second.result == "update"
    assert first.incident_id == second.incident_id
    [other] = await ev.handle(probe(clock, "failing", service="web"))  # another group: another incident
    assert other.result == "fire" and other.incident_id != first.incident_id
    [still] = await ev.handle(probe(clock, "ok", instance="a"))  # series b still failing
    assert still.state == "firing"
    [done] = await ev.handle(probe(clock, "ok", instance="b"))
    assert done.result == "resolve"
    incident = await services.incidents.get(first.incident_id)
    assert incident.state.value == "resolved" and incident.event_count == 4
    texts = [e.text for e in await services.incidents.store.timeline(first.incident_id)]
    assert texts[0] == "rule api-health-failing fired" and texts[-1] == "resolved: condition cleared"


async def test_ratio_over_a_window(make_config: Any, make_app: Any, clock: FakeClock) -> None:
    rules = """
rules:
  - id: health-ratio
    match: {source: probe, name: api-health}
    over: {window: 5m, ratio: {of: {status: failing}}}
    when: {value: "> 0.25"}
"""
    _, services = await make_app(make_config({"rules/r.yaml": rules}))
    ev = services.evaluator
    start = clock.now()
    for i, status in enumerate(["ok", "ok", "ok", "failing"]):
        clock.set(start + timedelta(seconds=i))
        [decision] = await ev.handle(probe(clock, status))
    assert decision.value == 0.25 and decision.state == "inactive"
    clock.set(start + timedelta(seconds=10))
    [decision] = await ev.handle(probe(clock, "failing"))
    assert decision.value == 0.4 and decision.result == "fire"
    # the window slides: once the failures are older than 5m the tick clears the rule without new events
    clock.set(start + timedelta(minutes=5, seconds=11))
    decisions = await ev.tick()
    assert decisions and decisions[-1].result == "resolve"


async def test_rule_state_survives_a_restart(make_config: Any, make_app: Any, clock: FakeClock) -> None:
    loaded = make_config({"rules/r.yaml": FOR_RULE})
    _, services = await make_app(loaded)
    await services.evaluator.handle(probe(clock, "failing"))
    _, restarted = await make_app(loaded)  # a second process on the same Redis
    clock.advance(300)
    [decision] = await restarted.evaluator.tick()
    assert decision.result == "fire"


async def test_quiet_period_resolves_alerts_that_never_send_a_resolve(make_config: Any, make_app: Any,
                                                                      clock: FakeClock) -> None:
    rules = FOR_RULE.replace("for: 5m", "for: 0s\n    resolve: {quiet: 30m}")
    _, services = await make_app(make_config({"rules/r.yaml": rules}))
    [fired] = await services.evaluator.handle(probe(clock, "failing"))
    clock.advance(minutes=29)
    assert await services.evaluator.tick() == []
    clock.advance(minutes=1)
    [decision] = await services.evaluator.tick()
    assert decision.result == "resolve"
    assert (await services.incidents.get(fired.incident_id)).resolved_by == "rule:api-health-failing"


async def test_a_problem_after_a_manual_resolve_opens_a_new_incident(make_config: Any, make_app: Any,
                                                                     clock: FakeClock) -> None:
    _, services = await make_app(make_config({"rules/r.yaml": FOR_RULE}))
    ev = services.evaluator
    await ev.handle(probe(clock, "failing"))
    clock.advance(300)
    [fired] = await ev.tick()
    await services.incidents.resolve(fired.incident_id, "user:alice", "looked fine to me")
    clock.advance(30)
    [again] = await ev.handle(probe(clock, "failing"))  # still failing: a new incident, not a silent update
    assert again.result == "fire" and again.incident_id not in (None, fired.incident_id)
    first, second = sorted(await incidents(services), key=lambda i: int(i.id))
    assert first.state.value == "resolved" and second.state.value == "triggered"
    clock.advance(30)
    [update] = await ev.handle(probe(clock, "failing"))  # and further results update that one
    assert update.result == "update" and update.incident_id == second.id
    assert len(await incidents(services)) == 2
