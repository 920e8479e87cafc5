"""The game day of `responder demo`, played in process (the daemon on the embedded store, the stand-ins, the
demo API, traffic and Sentry, all on 127.0.0.1), once for the module; the tests read what the stand-ins
recorded and what the daemon's API answers.

Time is compressed further than the shipped demo (Sentry window 5 s, probe and verify interval 0.5 s) so the
whole run takes about 15 s; tests/demo/test_cli.py runs the shipped timing end to end."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio

from responder.demo.config import Timing
from responder.demo.scenario import Report, milestones, play
from responder.demo.world import World

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

QUICK = Timing(settle="1s", verify_within="3s", verify_interval="500ms", probe_every="500ms")


@dataclass
class Played:
    world: World
    report: Report
    #: GET /api/v1/incidents/{id} of variant 1's incident, asked by the test itself
    detail: dict[str, Any]
    status_json: dict[str, Any]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def played() -> AsyncIterator[Played]:
    async with World(port=0, out=io.StringIO(), timing=QUICK, sentry_window=5.0) as world:
        report = await play(world)
        incident_id = report.variants[0].incidents[0].id
        detail = await world.get_json(f"/api/v1/incidents/{incident_id}")
        status_json = await world.get_json("/status.json")
        yield Played(world, report, detail, status_json)


def _rollbacks(world: World) -> list[dict[str, Any]]:
    return [v for name, v in world.railway.mutations if name == "deploymentRollback"]


async def test_both_variants_behave_as_expected(played: Played) -> None:
    failed = [(v.number, c.label, c.detail) for v in played.report.variants for c in v.checks if not c.ok]
    assert failed == []
    assert played.report.ok
    first, second = played.report.variants
    assert [len(v.incidents) for v in played.report.variants] == [1, 2]
    assert first.incidents[0].id == "1" and [i.id for i in second.incidents] == ["2", "3"]


async def test_variant_1_rolls_back_exactly_once_to_v1(played: Played) -> None:
    world, first = played.world, played.report.variants[0]
    v1_ids = {d.id for d in world.railway.history("api") if d.meta.get("release") == "v1"}
    assert len(first.rollbacks) == 1 and first.rollbacks[0]["id"] in v1_ids
    # the whole run: one rollback per variant, never a restart or a redeploy
    assert len(_rollbacks(world)) == 2
    assert {name for name, _ in world.railway.mutations} == {"deploymentRollback"}


async def test_variant_1_status_page_goes_degraded_then_operational(played: Played) -> None:
    world = played.world
    public = next(iter(world.statuspage.incidents.values()))  # variant 1's public incident
    updates = list(reversed(public["incident_updates"]))  # oldest first
    assert updates[0]["status"] == "identified"
    assert updates[0]["affected_components"] == [
        {"code": world.statuspage.component("API")["id"], "name": "API", "old_status": "operational",
         "new_status": "degraded_performance"}]
    assert public["status"] == "resolved" and public["resolved_at"]
    back = [c for u in updates for c in (u["affected_components"] or []) if c["new_status"] == "operational"]
    assert back and back[0]["name"] == "API" and back[0]["old_status"] == "degraded_performance"


async def test_variant_1_slack_message_is_updated_in_place(played: Played) -> None:
    world, first = played.world, played.report.variants[0]
    [ts] = first.slack_messages
    message = world.slack.messages[("C0INC0001", ts)]
    assert first.slack_updates and {u["ts"] for u in first.slack_updates} == {ts}
    assert message.edits == len(first.slack_updates) and message.text.startswith("Resolved")
    assert message.history[0].endswith("mitigating")  # the first version, edited since
    replies = [m.text for m in world.slack.thread(message)]
    assert any("railway.rollback ok" in r for r in replies) and any("verify ok" in r for r in replies)


async def test_variant_1_pages_nobody_and_records_the_change(played: Played) -> None:
    first = played.report.variants[0]
    assert first.triggers == []
    [change] = first.change_events
    assert change["payload"]["summary"].startswith("responder rolled back api to deployment")


async def test_variant_2_pages_once_with_the_incident_key_and_does_not_roll_back_again(played: Played) -> None:
    world, second = played.world, played.report.variants[1]
    failed_verify, refused = second.incidents
    assert len(second.rollbacks) == 1  # the rollback that did not help; the second firing made none
    verify_pages = [t for t in second.triggers if "still unhealthy after the rollback" in t["payload"]["summary"]]
    assert len(verify_pages) == 1 and verify_pages[0]["dedup_key"] == failed_verify.key
    assert verify_pages[0]["routing_key"] == world.secrets["PAGERDUTY_ROUTING_KEY"]
    # the second firing, inside the budget window: refused, frozen, paged instead
    assert refused.automation_frozen
    assert "at most 1 rollback of railway:api@production per 30m" in (refused.frozen_reason or "")
    budget_pages = [t for t in second.triggers if "failed or was refused" in t["payload"]["summary"]]
    assert len(budget_pages) == 1 and budget_pages[0]["dedup_key"] == refused.key
    assert len(second.triggers) == 2
    # PagerDuty saw the first alert resolved when its incident closed, and the second one is open
    assert [a.log for a in world.pagerduty.closed_alerts] == [["trigger", "resolve"]]
    assert world.pagerduty.alerts[refused.key].status == "triggered"


async def test_variant_1_timeline_api_lists_detection_rollback_verification_and_resolution(played: Played) -> None:
    timeline = played.detail["timeline"]
    assert played.detail["state"] == "resolved" and played.detail["resolved_by"] == "playbook step resolve"

    def at(predicate: Any) -> datetime:
        entry = next(e for e in timeline if predicate(e))
        return datetime.fromisoformat(entry["at"])

    detection = at(lambda e: e["kind"] == "rule" and e["actor"] == "rule:api-error-rate")
    rollback = at(lambda e: e["actor"] == "step:rollback" and e["text"].startswith("railway.rollback ok"))
    verification = at(lambda e: e["actor"] == "step:verify" and e["text"].startswith("verify ok"))
    resolution = at(lambda e: e["kind"] == "state" and e["text"].startswith("resolved"))
    assert detection < rollback < verification <= resolution
    run = next(r for r in played.detail["runs"] if r["playbook"] == "rollback-api")
    steps = {s["step"]: s["status"] for s in run["steps"]}
    assert steps["rollback"] == steps["verify"] == steps["resolve"] == "ok"


async def test_the_story_and_the_summary(played: Played) -> None:
    lines = played.world.story.lines
    text = "\n".join(lines)
    assert "Variant 1 — a bad deploy (v2), rolled back" in text
    assert any("railway" in line and "deploymentRollback" in line for line in lines)
    assert any("incident #2" in line and "verify failed" in line for line in lines)
    assert any("incident #3" in line and "automation frozen" in line for line in lines)
    first, second = played.report.variants
    for variant in (first, second):
        assert variant.seconds("detection") is not None and variant.seconds("rollback") is not None
    assert 0 < first.seconds("detection") < first.seconds("rollback") < first.seconds("verified")  # type: ignore[operator]
    [chain] = milestones(first)
    assert chain.startswith("bad deploy -> detection ") and " -> verified recovery " in chain


async def test_the_builtin_status_page_shows_the_open_incident(played: Played) -> None:
    # at the end the database is still down and incident #3 is open: the API is degraded on the page
    components = {c["id"]: c["status"] for c in played.status_json["components"]}
    assert components["api"] == "degraded_performance"
