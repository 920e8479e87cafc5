"""Every dashboard page and action on the real app and Redis: filters, runs and steps, probes, silences, chart."""

from __future__ import annotations

import re
from typing import Any

from responder.clock import FakeClock
from responder.events import Event, EventStatus, Severity
from responder.incidents.model import IncidentState
from responder.store.event_rate import events_per_minute
from tests.conftest import Sink
from tests.ui.conftest import WRITE, login, open_incident


def rows(page: str) -> list[str]:
    """Incident ids listed on the incidents page, in order."""
    return re.findall(r'<tr class="incident" data-id="([^"]+)"', page)


async def test_incident_list_filters(ui: Any) -> None:
    client, services = ui
    a = await open_incident(services, "API error rate above 5%", key="a", service="api")
    b = await open_incident(services, "Worker queue backed up", key="b", service="workers", severity=Severity.WARNING)
    c = await open_incident(services, "Checkout latency", key="c", service="checkout", severity=Severity.ERROR,
                            labels={"region": "eu-west"})
    await services.incidents.acknowledge(b.id, "user:bob")
    await services.incidents.resolve(c.id, "user:bob")
    await login(client)

    async def listed(query: str = "") -> list[str]:
        response = await client.get(f"/ui/incidents{query}")
        assert response.status == 200
        return rows(await response.text())

    assert await listed() == [c.id, b.id, a.id]
    assert await listed("?state=acknowledged") == [b.id]
    assert await listed("?state=resolved") == [c.id]
    assert await listed("?severity=warning") == [b.id]
    assert await listed("?service=api") == [a.id]
    assert await listed("?q=QUEUE") == [b.id]
    assert await listed("?q=eu-west") == [c.id]  # labels are searched too
    assert await listed("?q=latency+checkout&severity=error") == [c.id]
    assert await listed("?state=triggered&service=workers") == []
    assert await listed("?state=bogus&severity=<x>") == [c.id, b.id, a.id]  # unknown values are ignored
    page = await (await client.get("/ui/incidents?state=triggered&service=workers")).text()
    assert "No incidents match these filters" in page
    assert '<option value="workers" selected>' in page and "triggered: 1" in page and "resolved: 1" in page


async def test_acknowledge_resolve_and_unfreeze_from_the_incident_page(ui: Any) -> None:
    client, services = ui
    incident = await open_incident(services)
    csrf = await login(client, name="alice")
    page = await (await client.get(f"/ui/incidents/{incident.id}")).text()
    assert 'id="ack"' in page and 'id="resolve"' in page and 'id="unfreeze"' not in page

    response = await client.post(f"/ui/incidents/{incident.id}/ack", data={"csrf": csrf}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == f"/ui/incidents/{incident.id}?done=ack"
    page = await (await client.get(response.headers["Location"])).text()
    assert 'id="incident-state">acknowledged<' in page and "Acknowledged." in page
    assert 'id="ack"' not in page  # nothing to acknowledge any more
    assert "by user:alice" in page

    await services.incidents.freeze_automation(incident.id, "remediation budget exhausted")
    page = await (await client.get(f"/ui/incidents/{incident.id}")).text()
    assert "automation frozen: remediation budget exhausted" in page and 'id="unfreeze"' in page
    response = await client.post(f"/ui/incidents/{incident.id}/unfreeze", data={"csrf": csrf})
    assert response.status == 200 and "Automation unfrozen." in await response.text()
    assert not (await services.incidents.get(incident.id)).automation_frozen

    response = await client.post(f"/ui/incidents/{incident.id}/resolve", data={"csrf": csrf, "note": "rolled back"})
    assert response.status == 200
    resolved = await services.incidents.get(incident.id)
    assert resolved.state is IncidentState.RESOLVED and resolved.resolved_by == "user:alice"
    timeline = await services.incidents.store.timeline(incident.id)
    assert [(e.actor, e.text) for e in timeline if e.actor == "user:alice"] == [
        ("user:alice", "acknowledged"), ("user:alice", "automation unfrozen"), ("user:alice", "resolved: rolled back")]
    page = await client.get(f"/ui/incidents/{incident.id}/ack", allow_redirects=False)
    assert page.status == 405  # actions are POST only
    response = await client.post(f"/ui/incidents/{incident.id}/resolve", data={"csrf": csrf})
    assert response.status == 200  # resolving twice changes nothing
    response = await client.post("/ui/incidents/999/ack", data={"csrf": csrf})
    assert response.status == 404 and "No incident" in await response.text()


async def test_run_playbook_dry_then_for_real_shows_every_step(ui: Any, sink: Sink) -> None:
    client, services = ui
    incident = await open_incident(services, playbook="notify")
    csrf = await login(client, name="carol")
    page = await (await client.get(f"/ui/incidents/{incident.id}")).text()
    assert '<option value="notify" selected>' in page and 'name="dry_run" value="1" checked' in page

    response = await client.post(f"/ui/incidents/{incident.id}/run",
                                 data={"csrf": csrf, "playbook": "notify", "dry_run": "1"}, allow_redirects=False)
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith(f"/ui/incidents/{incident.id}?done=dry-run#run-{incident.id}-notify-manual-dry-")
    await services.runner.drain()
    assert sink.requests == []  # a dry run sends nothing
    page = await (await client.get(location.split("#")[0])).text()
    assert "Dry run started: nothing will be sent." in page
    assert "dry run · completed · started by user:carol" in page
    assert '<span class="pill dry-run">dry-run</span>' in page
    assert "Would send (1 request)" in page and f"POST {sink.url}/hook" in page
    assert "&#34;incident&#34;: &#34;1&#34;" in page  # the planned JSON body, escaped

    response = await client.post(f"/ui/incidents/{incident.id}/run", data={"csrf": csrf, "playbook": "notify"},
                                 allow_redirects=False)
    assert response.status == 303 and "?done=run#run-" in response.headers["Location"]
    await services.runner.drain()
    assert sink.paths == ["/hook"]
    page = await (await client.get(f"/ui/incidents/{incident.id}")).text()
    assert "manual · completed · started by user:carol" in page
    assert '<span class="pill ok">ok</span>' in page and "POST /hook -&gt; 200" in page.replace(sink.url, "")
    assert re.search(r"<td>\d+ ms</td>", page)  # the step's duration
    assert "Output</summary>" in page
    # the timeline has the whole story
    assert "playbook notify started" in page and "http.request ok" in page

    response = await client.post(f"/ui/incidents/{incident.id}/run", data={"csrf": csrf, "playbook": "nope"})
    assert response.status == 422 and "No playbook &#39;nope&#39;" in await response.text()
    await services.incidents.resolve(incident.id, "user:carol")
    response = await client.post(f"/ui/incidents/{incident.id}/run", data={"csrf": csrf, "playbook": "notify"})
    assert response.status == 409 and "only a dry run is possible" in await response.text()
    response = await client.post(f"/ui/incidents/{incident.id}/run",
                                 data={"csrf": csrf, "playbook": "notify", "dry_run": "1"}, allow_redirects=False)
    assert response.status == 303
    await services.runner.drain()


async def test_titles_and_alert_fields_are_escaped_everywhere(ui: Any) -> None:
    client, services = ui
    evil = '<script>alert("t")</script><img src=x onerror=alert(1)>'
    incident = await open_incident(
        services, evil, service='api"><svg onload=alert(2)>', summary="<b>bold</b> & <i>", url="javascript:alert(3)",
        labels={"<k>": "<v onmouseover=alert(4)>"})
    await services.incidents.note(incident.id, "user:<mallory>", "<iframe src=//evil>")
    await login(client)
    for path in ("/ui/incidents", f"/ui/incidents/{incident.id}", f"/ui/incidents?q={evil[:8]}"):
        page = await (await client.get(path)).text()
        for raw in ("<script", "<img", "<svg onload", "<iframe", "<b>bold", "<v ", "onerror=alert(1)>"):
            assert raw not in page, (path, raw)
        assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;" in page, path
    page = await (await client.get(f"/ui/incidents/{incident.id}")).text()
    assert "&lt;iframe src=//evil&gt;" in page and "user:&lt;mallory&gt;" in page
    assert "<code>javascript:alert(3)</code>" in page and 'href="javascript' not in page  # text, never a link


async def test_alert_links_only_for_http_urls(ui: Any) -> None:
    client, services = ui
    incident = await open_incident(services, url="https://sentry.example/issues/1?a=1&b=2")
    await login(client)
    page = await (await client.get(f"/ui/incidents/{incident.id}")).text()
    assert '<a href="https://sentry.example/issues/1?a=1&amp;b=2" rel="noopener noreferrer">' in page


async def test_incident_not_found_page(ui: Any) -> None:
    client, _ = ui
    await login(client)
    response = await client.get("/ui/incidents/42")
    assert response.status == 404 and "No incident &#39;42&#39;." in await response.text()


PROBES = """
probes:
  - id: api-health
    description: the API's health endpoint
    tcp: {host: 127.0.0.1, port: 9}
    every: 30s
    service: api
  - id: off
    tcp: {host: 127.0.0.1, port: 9}
    enabled: false
"""


async def test_probes_page_draws_sparklines(make_config: Any, make_app: Any, clock: FakeClock) -> None:
    client, services = await make_app(make_config({"probes/p.yaml": PROBES}))
    store = services.probes.store
    for status, latency in [("ok", 12.0), ("ok", 30.0), ("failing", 0.0), ("ok", 18.5)]:
        await store.record("api-health", {"at": clock.now().isoformat(), "status": status, "latency_ms": latency,
                                          "reason": "refused <tcp>" if status == "failing" else "", "value": latency},
                           clock.now(), status == "ok", 100)
        clock.advance(30)
    page = await (await client.get("/ui/probes")).text()
    row = page.split('data-id="api-health"')[1].split("</tr>")[0]
    assert '<svg class="spark"' in row and "<polyline points=" in row
    points = re.search(r'<polyline points="([^"]+)"', row)
    assert points and len(points.group(1).split()) == 4
    assert row.count('class="tick-failing"') == 1 and row.count('class="tick-ok"') == 3
    assert "refused &lt;tcp&gt;" in row and "75.0%" in row  # tooltip escaped; uptime 3 of 4
    assert "max 30.0 ms over 4 results" in row
    off = page.split('data-id="off"')[1].split("</tr>")[0]
    assert "disabled: enabled: false" in off and "no results yet" in off


async def test_silences_create_list_and_expire(ui: Any) -> None:
    client, services = ui
    csrf = await login(client, name="dave")
    page = await (await client.get("/ui/silences")).text()
    assert "No silences active or scheduled." in page and 'id="silence-form"' in page

    response = await client.post("/ui/silences", data={"csrf": csrf, "matchers": 'service=api name=~"err.*"',
                                                       "duration": "2h", "comment": "deploy <v42>"},
                                 allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/silences?done=silence"
    [silence] = await services.silences.list_silences()
    assert silence.created_by == "user:dave" and silence.comment == "deploy <v42>"
    page = await (await client.get("/ui/silences?done=silence")).text()
    assert "Silence created." in page and f'data-id="{silence.id}"' in page
    assert "deploy &lt;v42&gt;" in page and '<span class="pill active">active</span>' in page

    response = await client.post("/ui/silences", data={"csrf": csrf, "matchers": "<bad", "duration": "2h",
                                                       "comment": "<c>"})
    assert response.status == 422
    page = await response.text()
    assert 'class="error" role="alert">' in page and 'value="&lt;bad"' in page and 'value="&lt;c&gt;"' in page
    response = await client.post("/ui/silences", data={"csrf": csrf, "matchers": "service=api", "duration": "soon"})
    assert response.status == 422 and "duration" in await response.text()

    response = await client.post(f"/ui/silences/{silence.id}/expire", data={"csrf": csrf}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/silences?done=expire"
    assert (await services.silences.get(silence.id)).expired_by == "user:dave"
    assert f'data-id="{silence.id}"' not in await (await client.get("/ui/silences")).text()
    page = await (await client.get("/ui/silences?show=all")).text()
    assert f'data-id="{silence.id}"' in page and "ended by user:dave" in page
    response = await client.post("/ui/silences/sil-nope/expire", data={"csrf": csrf})
    assert response.status == 404
    response = await client.post("/ui/silences", data={"matchers": "service=api", "duration": "1h"})
    assert response.status == 403  # no CSRF field


def _event(i: int, clock: FakeClock) -> Event:
    return Event(source="test", name="e", status=EventStatus.INFO, fingerprint="f", occurred_at=clock.now(),
                 received_at=clock.now(), delivery_id=f"d{i}")


async def test_events_per_minute_from_the_stream(ui: Any, clock: FakeClock) -> None:
    client, services = ui
    await services.events.append([_event(i, clock) for i in range(7)])
    rate = await events_per_minute(services.events.redis, services.keys, chunk=2)  # several chunks
    assert len(rate.counts) == 60 and rate.total == 7 and sum(rate.counts[-2:]) == 7
    await login(client)
    page = await (await client.get("/ui/incidents")).text()
    assert "last hour: 7 events" in page and '<svg id="events-chart"' in page
    bars = re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)" class="bar"><title>([^<]+)</title>',
                      page)
    assert len(bars) == 60 and sum(int(t.split(": ")[1].split()[0]) for _h, t in bars) == 7
    assert max(float(h) for h, _t in bars) == 118.0  # the busiest minute fills the plot


async def test_event_rate_ignores_entries_outside_the_window(ui: Any) -> None:
    _, services = ui
    redis = services.events.redis
    now_s, _micros = await redis.time()
    old = (int(now_s) - 2 * 3600) * 1000
    await redis.xadd(services.keys.events, {"e": "{}"}, id=f"{old}-0")
    await redis.xadd(services.keys.events, {"e": "{}"}, id=f"{old + 1}-0")
    await redis.xadd(services.keys.events, {"e": "{}"})
    rate = await events_per_minute(redis, services.keys, minutes=60, maxlen=3)
    assert rate.total == 1
    assert not rate.truncated  # the oldest kept entry is older than the window
    await redis.xtrim(services.keys.events, maxlen=1, approximate=False)
    rate = await events_per_minute(redis, services.keys, minutes=60, maxlen=1)
    assert rate.total == 1 and rate.truncated  # full stream starting inside the window


async def test_bearer_sessions_see_a_token_label_and_the_postmortem_link(ui: Any) -> None:
    client, services = ui
    incident = await open_incident(services)
    response = await client.get(f"/ui/incidents/{incident.id}", headers={"Authorization": f"Bearer {WRITE}"})
    page = await response.text()
    assert "bearer token (write)" in page and f'href="/ui/incidents/{incident.id}/postmortem.md"' in page
    response = await client.get(f"/ui/incidents/{incident.id}/postmortem.md",
                                headers={"Authorization": f"Bearer {WRITE}"})
    assert response.status == 200 and response.content_type == "text/markdown"
