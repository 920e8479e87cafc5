"""IncidentService's shortcuts on a real Redis: the open script hands back the incident, `known` spares a read but
never overwrites a change made meanwhile, and a note is one round trip that still refuses unknown incidents."""

from __future__ import annotations

from typing import Any

import pytest

from responder.events import Event, EventStatus, Severity
from responder.incidents.model import Incident, IncidentState, TimelineEntry
from responder.incidents.service import IncidentNotFound


async def open_incident(services: Any, key: str = "k") -> tuple[Incident, bool]:
    return await services.incidents.open(  # type: ignore[no-any-return]
        key=key, rule_id="r", title="t", severity=Severity.CRITICAL, group={"service": "api"}, playbook=None,
        event=None, text="opened by test")


def event(clock: Any, i: int) -> Event:
    now = clock.now()
    return Event(source="test", name="n", status=EventStatus.FIRING, fingerprint="f", occurred_at=now,
                 received_at=now, delivery_id=f"d{i}", value=float(i))


async def test_open_returns_the_stored_incident_and_appends_to_an_open_one(make_config: Any, make_app: Any) -> None:
    _, services = await make_app(make_config({}))
    first, created = await open_incident(services)
    assert created and first == await services.incidents.get(first.id)
    assert first.group == {"service": "api"} and first.labels == {}
    again, created = await open_incident(services)
    assert not created and again.id == first.id
    assert [e.text for e in await services.incidents.store.timeline(first.id)] == ["opened by test"] * 2


async def test_known_incident_is_written_without_a_read_when_unchanged(make_config: Any, make_app: Any) -> None:
    _, services = await make_app(make_config({}))
    incident, _ = await open_incident(services)
    reads = 0
    get = services.incidents.store.get

    async def counting_get(incident_id: str) -> Incident | None:
        nonlocal reads
        reads += 1
        return await get(incident_id)  # type: ignore[no-any-return]

    services.incidents.store.get = counting_get
    mitigating = await services.incidents.start_mitigation(incident.id, "p", known=incident)
    assert reads == 0 and mitigating.state is IncidentState.MITIGATING
    done = await services.incidents.end_mitigation(incident.id, "p", "completed", known=mitigating)
    assert reads == 0 and done is not None and done.state is IncidentState.TRIGGERED
    assert await get(incident.id) == done


async def test_a_stale_known_incident_never_overwrites_a_change(make_config: Any, make_app: Any, clock: Any) -> None:
    _, services = await make_app(make_config({}))
    incident, _ = await open_incident(services)
    await services.incidents.record_event(incident.id, event(clock, 7))  # meanwhile: event_count 2, value 7
    mitigating = await services.incidents.start_mitigation(incident.id, "p", known=incident)
    assert mitigating.state is IncidentState.MITIGATING
    assert (mitigating.event_count, mitigating.value) == (2, 7.0)  # read again, not the stale copy
    assert await services.incidents.get(incident.id) == mitigating
    # stale in state too: resolved meanwhile, so the end of the mitigation is only noted
    await services.incidents.resolve(incident.id, "user:alice")
    assert await services.incidents.end_mitigation(incident.id, "p", "completed", known=mitigating) is None
    assert (await services.incidents.get(incident.id)).state is IncidentState.RESOLVED


async def test_note_is_one_round_trip_and_refuses_an_unknown_incident(make_config: Any, make_app: Any) -> None:
    _, services = await make_app(make_config({}))
    incident, _ = await open_incident(services)
    heard: list[tuple[Incident, TimelineEntry]] = []
    await services.incidents.note(incident.id, "user:bob", "looking")  # no listener: the document is not fetched

    async def listener(inc: Incident, entry: TimelineEntry, changed: bool) -> None:
        heard.append((inc, entry))

    services.incidents.on_timeline.append(listener)
    await services.incidents.note(incident.id, "user:bob", "found it")
    assert [(inc.id, entry.text) for inc, entry in heard] == [(incident.id, "found it")]
    with pytest.raises(IncidentNotFound):
        await services.incidents.note("999999", "user:bob", "nobody")
    assert not await services.incidents.store.redis.exists(services.keys.timeline("999999"))
    assert [e.text for e in await services.incidents.store.timeline(incident.id)][-2:] == ["looking", "found it"]
