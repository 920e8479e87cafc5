"""status.incident / status.resolve: the built-in page's public incidents (the same verbs as Statuspage's)."""

from __future__ import annotations

from typing import Any

from tests.playbooks.test_runner import open_incident

PLAYBOOK = """
playbooks:
  - id: p
    steps:
      - name: public
        action: status.incident
        with: {name: "Elevated API errors", status: identified, body: "A faulty release is being rolled back.",
               components: {api: partial_outage}}
      - name: progress
        action: status.incident
        with: {status: monitoring, body: "Rolled back; watching error rates."}
      - name: public resolution
        action: status.resolve
        with: {body: "Error rates are normal again."}
"""


async def test_public_incident_lifecycle_on_the_built_in_page(make_config: Any, make_app: Any, clock: Any) -> None:
    files = {"responder.yaml": "status_page: {components: [{id: api, name: API}]}\n", "playbooks/p.yaml": PLAYBOOK}
    client, services = await make_app(make_config(files))
    incident = await open_incident(services, "p")  # internal title "t"

    run_id = await services.runner.start(incident, "p", None, phase="manual")
    await services.runner.drain()
    assert (await services.runs.step_record(run_id, "public resolution"))["status"] == "ok"
    status = await (await client.get("/status.json")).json()
    assert status["incidents"] == []
    [done] = status["resolved_incidents"]
    assert done["name"] == "Elevated API errors" and done["status"] == "resolved"
    assert [u["status"] for u in done["updates"]] == ["resolved", "monitoring", "identified"]
    assert status["components"][0]["status"] == "operational"  # restored: the incident had touched it
    assert [h["status"] for h in status["history"]][:2] == ["operational", "partial_outage"]


async def test_open_public_incident_is_shown_with_its_latest_update(make_config: Any, make_app: Any) -> None:
    files = {"playbooks/p.yaml": PLAYBOOK.split("      - name: progress")[0]}
    client, services = await make_app(make_config(files))
    incident = await open_incident(services, "p")
    await services.runner.start(incident, "p", None, phase="manual")
    await services.runner.drain()
    status = await (await client.get("/status.json")).json()
    [current] = status["incidents"]
    assert current["name"] == "Elevated API errors" and current["status"] == "identified"
    assert status["overall"] == "partial_outage"
    page = await (await client.get("/status")).text()
    assert "Elevated API errors" in page and "A faulty release is being rolled back." in page
    assert "Current incidents" in page


async def test_status_incident_without_a_name_uses_the_title_and_can_be_resolved_once(make_config: Any,
                                                                                    make_app: Any) -> None:
    playbook = ("playbooks:\n  - id: p\n    steps:\n"
                "      - {name: a, action: status.incident, with: {status: investigating}}\n"
                "      - {name: b, action: status.resolve, with: {}}\n"
                "      - {name: c, action: status.resolve, with: {}}\n")
    client, services = await make_app(make_config({"playbooks/p.yaml": playbook}))
    incident = await open_incident(services, "p")
    run_id = await services.runner.start(incident, "p", None, phase="manual")
    await services.runner.drain()
    [done] = (await (await client.get("/status.json")).json())["resolved_incidents"]
    assert done["name"] == incident.title
    assert len(done["updates"]) == 2  # resolving twice changes nothing
    assert (await services.runs.step_record(run_id, "c"))["status"] == "ok"
