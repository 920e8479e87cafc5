"""Silences on a real Redis with the fake clock: a silenced firing is recorded but opens no incident and runs
no playbook; after the silence the next firing (or the tick at its end, when the alert still fires) does.
Weekly maintenance windows across DST changes, config silences, and the matcher text syntax."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from responder.clock import FakeClock
from responder.config.loader import LoadedConfig
from responder.engine.rules import Match
from responder.engine.silences import (
    Silence,
    SilenceError,
    SilenceSpec,
    WeeklyRecurrence,
    format_matchers,
    parse_matchers,
    parse_silence_command,
)
from responder.errors import ConfigError
from responder.events import Event, EventStatus, fingerprint
from tests.conftest import PAYLOADS, Sink

TOKEN = "write-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

AM_RULES = """
rules:
  - id: crashloop
    match: {source: alertmanager, name: PodCrashLooping}
    severity: critical
    group_by: [labels.namespace]
    playbook: restart
"""

PLAYBOOKS = """
playbooks:
  - id: restart
    steps:
      - name: restart
        action: http.request
        with: {url: "${SINK}/restart/{{ incident.group.namespace }}", method: POST}
  - id: restart-service
    steps:
      - name: restart
        action: http.request
        with: {url: "${SINK}/restart/{{ incident.service }}", method: POST}
"""

PROBE_RULES = """
rules:
  - id: api-down
    match: {source: probe, name: api-health}
    when: {status: failing}
    severity: critical
    group_by: [service]
    playbook: restart-service
"""


def alert(starts_at: str = "2024-11-21T09:12:41.301Z", status: str = "firing",
          namespace: str = "payments") -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((PAYLOADS / "alertmanager" / "firing.json").read_text())
    payload = copy.deepcopy(payload)
    payload["status"] = status
    item = payload["alerts"][0]
    item["status"] = status
    item["startsAt"] = starts_at
    item["labels"]["namespace"] = namespace
    item["fingerprint"] = f"fp-{namespace}"
    if status == "resolved":
        item["endsAt"] = "2024-11-21T09:40:00Z"
    return payload


def probe(clock: FakeClock, status: str, *, service: str = "api", instance: str = "a") -> Event:
    labels = {"instance": instance}
    return Event(source="probe", name="api-health", service=service, status=EventStatus(status), labels=labels,
                 fingerprint=fingerprint("probe", "api-health", labels), occurred_at=clock.now(),
                 received_at=clock.now(), delivery_id=f"probe:{clock.now().isoformat()}:{service}:{instance}")


def config(make_config: Any, sink: Sink, rules: str, yaml: str = "") -> LoadedConfig:
    loaded: LoadedConfig = make_config({
        "responder.yaml": f"server: {{api_tokens: {{write: '{TOKEN}'}}}}\n{yaml}",
        "rules/r.yaml": rules, "playbooks/p.yaml": PLAYBOOKS}, env={"SINK": sink.url})
    return loaded


async def deliver(client: Any, services: Any, payload: dict[str, Any]) -> None:
    response = await client.post("/hooks/alertmanager", json=payload)
    assert response.status == 202, await response.text()
    assert await services.consumer.poll(block_ms=100) == 1
    await services.runner.drain()


async def create(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/v1/silences", json=body, headers=AUTH)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def metric(client: Any, line: str) -> bool:
    return line in await (await client.get("/metrics")).text()


# --- the acceptance: recorded, no incident, no playbook; after the silence the next one does -------------


async def test_silenced_alert_is_recorded_without_incident_or_playbook_and_the_next_after_expiry_opens_one(
        make_config: Any, make_app: Any, sink: Sink, clock: FakeClock) -> None:
    client, services = await make_app(config(make_config, sink, AM_RULES))
    silence = await create(client, {"matchers": "name=PodCrashLooping namespace=payments", "duration": "1h",
                                    "comment": "node drain", "created_by": "alice"})
    assert silence["state"] == "active" and silence["created_by"] == "user:alice"

    await deliver(client, services, alert())
    assert await services.events.length() == 1  # the event is kept in the stream
    assert await services.incidents.store.list() == []
    assert sink.requests == []  # no playbook step ran
    detail = await (await client.get(f"/api/v1/silences/{silence['id']}")).json()
    assert detail["suppressed"] == 1
    [hit] = detail["suppressed_events"]
    assert hit["rule_id"] == "crashloop" and hit["name"] == "PodCrashLooping" and hit["status"] == "firing"
    assert hit["event_id"] and hit["key"] == "crashloop|namespace=payments"
    assert await metric(client, 'responder_events_silenced_total{rule="crashloop"} 1.0')
    assert not await metric(client, 'responder_rule_firings_total{rule="crashloop"}')  # it did not fire

    # another namespace is not covered by the silence: it opens its own incident and runs the playbook
    await deliver(client, services, alert(namespace="billing"))
    [other] = await services.incidents.store.list()
    assert other.group == {"namespace": "billing"} and sink.paths == ["/restart/billing"]

    # the alert recovers during the silence; after the silence it fires again: incident + playbook
    await deliver(client, services, alert(status="resolved"))
    clock.advance(hours=1, seconds=1)
    assert (await (await client.get("/api/v1/silences")).json())["silences"] == []
    await services.evaluator.tick()
    assert len(await services.incidents.store.list()) == 1  # nothing was left waiting
    [expired] = (await (await client.get("/api/v1/silences?state=expired")).json())["silences"]
    assert (expired["id"], expired["suppressed"]) == (silence["id"], 1)  # still visible for a day
    await deliver(client, services, alert(starts_at="2024-11-21T11:00:00Z"))
    incidents = await services.incidents.store.list()
    assert len(incidents) == 2
    opened = next(i for i in incidents if i.group == {"namespace": "payments"})
    assert opened.state.value == "mitigating" or opened.state.value == "triggered"
    assert sink.paths == ["/restart/billing", "/restart/payments"]
    assert await metric(client, 'responder_events_silenced_total{rule="crashloop"} 1.0')


async def test_an_alert_still_firing_when_the_silence_ends_opens_its_incident_on_the_tick(
        make_config: Any, make_app: Any, sink: Sink, clock: FakeClock) -> None:
    """Alertmanager repeats a firing alert with the same startsAt (a duplicate delivery): the silence's end
    itself must open the incident."""
    client, services = await make_app(config(make_config, sink, AM_RULES))
    await create(client, {"matchers": {"name": "PodCrashLooping"}, "duration": "30m"})
    await deliver(client, services, alert())
    clock.advance(minutes=29)
    assert await services.evaluator.tick() == []
    await deliver(client, services, alert(starts_at="2024-11-21T09:30:00Z"))  # a new firing: still silenced
    assert await services.incidents.store.list() == []
    clock.advance(minutes=1)
    [decision] = await services.evaluator.tick()
    assert decision.result == "fire" and decision.incident_id
    await services.runner.drain()
    incident = await services.incidents.get(decision.incident_id)
    assert incident.rule_id == "crashloop" and incident.source == "alertmanager"
    assert sink.paths == ["/restart/payments"]
    assert await services.evaluator.tick() == []  # once
    assert await metric(client, 'responder_events_silenced_total{rule="crashloop"} 2.0')


async def test_expiring_a_silence_early_releases_what_it_held_back(make_config: Any, make_app: Any, sink: Sink,
                                                                   clock: FakeClock) -> None:
    client, services = await make_app(config(make_config, sink, PROBE_RULES))
    silence = await services.silences.silence_for("service=api", "2h", "deploy", "slack:U123")
    [decision] = await services.evaluator.handle(probe(clock, "failing"))
    assert decision.result == "silenced" and decision.state == "firing" and decision.incident_id is None
    clock.advance(minutes=5)
    response = await client.delete(f"/api/v1/silences/{silence.id}", headers=AUTH, json={"actor": "bob"})
    assert response.status == 200
    ended = await response.json()
    assert ended["state"] == "expired" and ended["expired_by"] == "user:bob"
    [decision] = await services.evaluator.tick()
    assert decision.result == "fire"
    await services.runner.drain()
    assert sink.paths == ["/restart/api"]


async def test_the_next_problem_event_after_the_silence_opens_the_incident(make_config: Any, make_app: Any,
                                                                          sink: Sink, clock: FakeClock) -> None:
    """The rule state stayed `firing` through the silence: the next failing result is an update, and it opens
    the incident (no group is left firing without one)."""
    _, services = await make_app(config(make_config, sink, PROBE_RULES))
    await services.silences.silence_for("service=api", "10m", "", "user:alice")
    ev = services.evaluator
    assert [d.result for d in await ev.handle(probe(clock, "failing"))] == ["silenced"]
    clock.advance(minutes=2)
    assert [d.result for d in await ev.handle(probe(clock, "failing", instance="b"))] == ["silenced"]
    clock.advance(minutes=10)
    [decision] = await ev.handle(probe(clock, "failing"))  # before any tick
    assert decision.result == "fire" and decision.incident_id
    await services.runner.drain()
    assert sink.paths == ["/restart/api"]
    assert await ev.tick() == []  # the held-back mark was cleared by the firing
    [update] = await ev.handle(probe(clock, "failing", instance="b"))
    assert update.result == "update" and update.incident_id == decision.incident_id
    assert sink.paths == ["/restart/api"]


async def test_a_recovery_during_the_silence_leaves_nothing_behind(make_config: Any, make_app: Any, sink: Sink,
                                                                   clock: FakeClock) -> None:
    _, services = await make_app(config(make_config, sink, PROBE_RULES))
    await services.silences.silence_for("service=api", "10m", "", "user:alice")
    ev = services.evaluator
    await ev.handle(probe(clock, "failing"))
    [resolved] = await ev.handle(probe(clock, "ok"))
    assert resolved.result == "resolve" and resolved.incident_id is None
    clock.advance(minutes=10)
    assert await ev.tick() == []
    assert await services.incidents.store.list() == []
    [fired] = await ev.handle(probe(clock, "failing"))
    assert fired.result == "fire" and fired.incident_id


async def test_a_for_rule_firing_on_the_tick_is_tested_on_its_sample_event(make_config: Any, make_app: Any,
                                                                          sink: Sink, clock: FakeClock) -> None:
    rules = PROBE_RULES.replace("severity: critical", "for: 5m\n    severity: critical")
    _, services = await make_app(config(make_config, sink, rules))
    ev = services.evaluator
    [pending] = await ev.handle(probe(clock, "failing", instance="db-1"))
    assert pending.result == "pending"
    await services.silences.silence_for('instance=~"db-.*"', "1h", "", "user:alice")
    clock.advance(minutes=5)
    [decision] = await ev.tick()
    assert decision.result == "silenced"
    assert await services.incidents.store.list() == []


async def test_a_firing_without_any_event_is_tested_on_its_group(make_config: Any, make_app: Any, sink: Sink,
                                                                clock: FakeClock) -> None:
    """A heartbeat rule (`count < 1`) fires on the tick with no sample event: the group and the rule's own
    source/name decide."""
    rules = """
rules:
  - id: heartbeat
    match: {source: probe, name: api-health}
    over: {window: 10m, count: {status: ok}}
    when: {value: "< 1"}
    for: 1m
    group_by: [service]
"""
    _, services = await make_app(config(make_config, sink, rules))
    await services.silences.silence_for("source=probe service=api", "1h", "", "user:alice")
    await services.silences.silence_for("source=sentry service=web", "1h", "", "user:alice")
    ev = services.evaluator
    await ev.handle(probe(clock, "failing"))
    await ev.handle(probe(clock, "failing", service="web"))
    clock.advance(minutes=1)
    decisions = {d.key: d.result for d in await ev.tick()}
    assert decisions == {"heartbeat|service=api": "silenced", "heartbeat|service=web": "fire"}


async def test_an_open_incident_keeps_receiving_events_during_a_silence(make_config: Any, make_app: Any,
                                                                        sink: Sink, clock: FakeClock) -> None:
    _, services = await make_app(config(make_config, sink, PROBE_RULES))
    ev = services.evaluator
    [fired] = await ev.handle(probe(clock, "failing"))
    await services.runner.drain()
    await services.silences.silence_for("service=api", "1h", "", "user:alice")
    [update] = await ev.handle(probe(clock, "failing", instance="b"))
    assert update.result == "update" and update.incident_id == fired.incident_id
    assert (await services.incidents.get(fired.incident_id)).event_count == 2


# --- weekly maintenance windows -------------------------------------------------------------------------

BERLIN_SUNDAY = WeeklyRecurrence(days=["Sunday"], start="02:00", end="04:00", timezone="Europe/Berlin")


def weekly(recurrence: WeeklyRecurrence = BERLIN_SUNDAY, **extra: Any) -> Silence:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return Silence(id="sil-test", matchers=parse_matchers("service=api"), starts_at=extra.pop("starts_at", start),
                   recurrence=recurrence, created_by="user:t", created_at=start, **extra)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(("moment", "active"), [
    # winter (CET, +01:00): Sunday 2026-01-04 02:00-04:00 local = 01:00-03:00 UTC
    ("2026-01-04T00:59:59+00:00", False), ("2026-01-04T01:00:00+00:00", True), ("2026-01-04T02:59:59+00:00", True),
    ("2026-01-04T03:00:00+00:00", False), ("2026-01-05T01:30:00+00:00", False),  # a Monday
    # summer (CEST, +02:00): 2026-06-07 02:00-04:00 local = 00:00-02:00 UTC
    ("2026-06-07T00:00:00+00:00", True), ("2026-06-07T02:00:00+00:00", False), ("2026-06-06T23:59:00+00:00", False),
    # spring forward, Sunday 2026-03-29: 02:00-03:00 does not exist, the window is 03:00-04:00 CEST (01-02 UTC)
    ("2026-03-29T00:59:00+00:00", False), ("2026-03-29T01:00:00+00:00", True), ("2026-03-29T01:59:59+00:00", True),
    ("2026-03-29T02:00:00+00:00", False),
    # fall back, Sunday 2026-10-25: 02:00 CEST (00:00 UTC) to 04:00 CET (03:00 UTC), three real hours
    ("2026-10-24T23:59:59+00:00", False), ("2026-10-25T00:00:00+00:00", True), ("2026-10-25T02:30:00+00:00", True),
    ("2026-10-25T03:00:00+00:00", False),
])
def test_weekly_window_in_local_time_across_dst(moment: str, active: bool) -> None:
    assert weekly().active_at(at(moment)) is active


def test_weekly_window_bounds_and_overnight_windows() -> None:
    silence = weekly()
    now = at("2026-03-28T12:00:00+00:00")
    assert silence.state(now) == "scheduled" and silence.next_start(now) == at("2026-03-29T01:00:00+00:00")
    inside = at("2026-10-25T01:00:00+00:00")
    assert silence.state(inside) == "active" and silence.active_until(inside) == at("2026-10-25T03:00:00+00:00")
    # overnight, Friday 22:00 to Saturday 02:00 New York time; until cuts the schedule
    overnight = weekly(WeeklyRecurrence(days=["fri"], start="22:00", end="02:00", timezone="America/New_York"),
                       ends_at=at("2026-01-17T00:00:00+00:00"))
    assert not overnight.active_at(at("2026-01-10T02:59:00+00:00"))  # Friday 2026-01-09 21:59 EST
    assert overnight.active_at(at("2026-01-10T04:00:00+00:00"))  # Friday 23:00 EST
    assert overnight.active_at(at("2026-01-10T06:59:00+00:00"))  # Saturday 01:59 EST
    assert not overnight.active_at(at("2026-01-10T07:00:00+00:00"))
    assert not overnight.active_at(at("2026-01-17T04:00:00+00:00"))  # after ends_at
    assert overnight.state(at("2026-01-17T00:00:00+00:00")) == "expired"
    # a recurrence that starts in a month is scheduled, with its first window as the next start
    later = weekly(starts_at=at("2026-02-10T00:00:00+00:00"))
    assert later.next_start(at("2026-01-01T00:00:00+00:00")) == at("2026-02-15T01:00:00+00:00")


async def test_a_maintenance_window_from_responder_yaml(make_config: Any, make_app: Any, sink: Sink,
                                                        clock: FakeClock) -> None:
    yaml = """
silences:
  - id: sunday-maintenance
    matchers: service=api
    recurrence: {days: [sun], start: "02:00", end: "04:00", timezone: Europe/Berlin}
    comment: weekly database maintenance
"""
    client, services = await make_app(config(make_config, sink, PROBE_RULES, yaml))
    clock.set(at("2026-03-29T01:30:00+00:00"))  # 03:30 CEST on the day the clocks go forward
    assert [d.result for d in await services.evaluator.handle(probe(clock, "failing"))] == ["silenced"]
    listed = (await (await client.get("/api/v1/silences")).json())["silences"]
    assert [(s["id"], s["source"], s["state"], s["suppressed"]) for s in listed] == [
        ("sunday-maintenance", "config", "active", 1)]
    assert listed[0]["active_until"] == "2026-03-29T02:00:00Z"
    refused = await client.delete("/api/v1/silences/sunday-maintenance", headers=AUTH)
    assert refused.status == 409 and (await refused.json())["field"] == "id"
    clock.set(at("2026-03-29T02:00:00+00:00"))  # 04:00 CEST: the window is over
    [decision] = await services.evaluator.tick()
    assert decision.result == "fire"
    await services.runner.drain()
    assert sink.paths == ["/restart/api"]
    listed = (await (await client.get("/api/v1/silences")).json())["silences"]
    assert listed[0]["state"] == "scheduled" and listed[0]["next_start"] == "2026-04-05T00:00:00Z"


def test_config_silence_errors_name_file_line_and_field(make_config: Any) -> None:
    with pytest.raises(ConfigError) as bad:
        make_config({"responder.yaml": """
silences:
  - id: nightly
    matchers: service=api
    recurrence: {days: [sun], start: "02:00", end: "04:00", timezone: Europe/Berlln}
  - id: nightly
    matchers: 'name=~"("'
    ends_at: 2026-01-01T00:00:00Z
"""})
    text = str(bad.value)
    assert "responder.yaml:5" in text and "silences.0.recurrence.timezone" in text and "Europe/Berlln" in text
    assert "silences.1.matchers" in text and "invalid regular expression" in text


# --- the matcher text syntax ----------------------------------------------------------------------------


def dumped(match: Match) -> dict[str, Any]:
    return match.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)


@pytest.mark.parametrize(("text", "expected"), [
    ("service=api", {"service": {"eq": "api"}}),
    ('service=api name=~"error.*" severity!=info', {"service": {"eq": "api"}, "name": {"regex": "error.*"},
                                                    "severity": {"not": "info"}}),
    ("severity!=info severity!=warning", {"severity": {"not_in": ["info", "warning"]}}),
    ("env=prod labels.team=payments", {"labels": {"env": {"eq": "prod"}, "team": {"eq": "payments"}}}),
    ('{service="api", env="prod"}', {"service": {"eq": "api"}, "labels": {"env": {"eq": "prod"}}}),
    ("\u201cname\u201d=x", None),  # curly quotes around a key are not a key
    ("name=\u201cdisk full\u201d", {"name": {"eq": "disk full"}}),  # Slack's curly quotes
    (r'name=~"err\d+ \"x\""', {"name": {"regex": r'err\d+ "x"'}}),
    ("service=api service!=api-canary", {"service": {"eq": "api", "not": "api-canary"}}),
    ("app.kubernetes.io/name=checkout", {"labels": {"app.kubernetes.io/name": {"eq": "checkout"}}}),
])
def test_parse_matchers(text: str, expected: dict[str, Any] | None) -> None:
    if expected is None:
        with pytest.raises(SilenceError):
            parse_matchers(text)
        return
    match = parse_matchers(text)
    assert dumped(match) == expected
    assert parse_matchers(format_matchers(match)) == match  # the text form reads back


@pytest.mark.parametrize(("text", "message"), [
    ("", "at least one matcher"),
    ("service", "cannot read 'service'"),
    ("service=api junk", "cannot read 'junk'"),
    ("status=firing", "cannot silence on 'status'"),
    ("name!~debug", "not supported"),
    ("service=a service=b", 'service=~"a|b"'),
    ('name=~"("', "invalid regular expression"),
    ("service=", "needs a value"),
    ("{service=api", "not closed"),
])
def test_parse_matchers_errors(text: str, message: str) -> None:
    with pytest.raises(SilenceError) as bad:
        parse_matchers(text)
    assert message in bad.value.message and bad.value.field == "matchers"


def test_parse_silence_command() -> None:
    match, duration, reason = parse_silence_command('service=api name=~"error.*" 2h deploy of v42')
    assert format_matchers(match) == 'name=~error.* service=api' and duration == timedelta(hours=2)
    assert reason == "deploy of v42"
    assert parse_silence_command("env=prod 1h30m")[1:] == (timedelta(hours=1, minutes=30), "")
    for text, field in [("2h maintenance", "matchers"), ("service=api", "duration"),
                        ("service=api soon please", "duration"), ("service=api 0s", "duration")]:
        with pytest.raises(SilenceError) as bad:
            parse_silence_command(text)
        assert bad.value.field == field, text


def test_a_silence_needs_a_matcher() -> None:
    with pytest.raises(ValueError, match="at least one matcher"):
        SilenceSpec.model_validate({"matchers": {}, "duration": "1h"})
