"""The game day: two variants of a bad day for the API, played against a live daemon, with the outcome
checked against what the stand-ins recorded.

Variant 1 — a bad deploy. v2 goes live on Railway and breaks the API (Redis pool: 40% of requests fail,
/health says redis unhealthy). Sentry's error-rate alert fires; the rule opens an incident and the bundled
rollback-api playbook runs: Slack message, status page degraded, Statuspage incident, Railway rollback to v1
(the API is healthy again), PagerDuty change event, settle, verify /health twice, status pages operational,
incident resolved. Expected: exactly one rollback, the status page back to operational, one Slack message
updated in place, nobody paged, and the timeline listing detection, rollback, verification and resolution.

Then the clock jumps 35 minutes (past the 30-minute remediation budget window of that rollback).

Variant 2 — the database is down. v3 (a good release) goes live and the database fails at the same time.
The playbook rolls back (one rollback), which cannot help; verification fails and on-call is paged once,
with the incident key as dedup key. The database comes back for a moment (Sentry resolves, the incident
closes), then fails again: a second firing inside the budget window opens a new incident whose rollback
is refused by the remediation budget (automation frozen) and which pages instead. Expected: one rollback
in the variant, one page per incident with that incident's dedup key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from responder.demo.target import RELEASES
from responder.demo.world import World
from responder.incidents.model import Incident, TimelineEntry

__all__ = ["Check", "Report", "Variant", "play"]

JUMP = timedelta(minutes=35)
DETECT_TIMEOUT = 20.0
RUN_TIMEOUT = 45.0


@dataclass
class Check:
    label: str
    ok: bool
    detail: str = ""


@dataclass
class Variant:
    number: int
    title: str
    deployed_at: datetime | None = None
    #: moment name -> when (detection, rollback, verified, resolved, verify failed, paged, ...)
    marks: dict[str, datetime] = field(default_factory=dict)
    incidents: list[Incident] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    #: what the stand-ins received during this variant
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    change_events: list[dict[str, Any]] = field(default_factory=list)
    slack_messages: list[str] = field(default_factory=list)  # ts of the top-level messages posted
    slack_updates: list[dict[str, Any]] = field(default_factory=list)  # chat.update bodies
    #: GET /api/v1/incidents/{id} of the variant's first incident, as the API answered
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def check(self, label: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(label, ok, detail))
        return ok

    def seconds(self, mark: str) -> float | None:
        moment = self.marks.get(mark)
        if moment is None or self.deployed_at is None:
            return None
        return (moment - self.deployed_at).total_seconds()


@dataclass
class Report:
    variants: list[Variant]

    @property
    def ok(self) -> bool:
        return bool(self.variants) and all(v.ok for v in self.variants)


class _Marker:
    """Where each variant starts in the stand-ins' records, so its own calls can be told apart."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.mutations = len(world.railway.mutations)
        self.events = len(world.pagerduty.events)
        self.changes = len(world.pagerduty.change_events)
        self.messages = set(world.slack.messages)
        self.updates = len(world.slack.calls(path="/api/chat.update"))

    def fill(self, variant: Variant) -> None:
        w = self.world
        variant.rollbacks = [v for name, v in w.railway.mutations[self.mutations:] if name == "deploymentRollback"]
        variant.triggers = [e for e in w.pagerduty.events[self.events:] if e.get("event_action") == "trigger"]
        variant.change_events = list(w.pagerduty.change_events[self.changes:])
        variant.slack_messages = [m.ts for key, m in w.slack.messages.items()
                                  if key not in self.messages and m.thread_ts is None]
        variant.slack_updates = [r.json for r in w.slack.calls(path="/api/chat.update")[self.updates:]
                                 if isinstance(r.json, dict)]


def _first(entries: list[TimelineEntry], actor: str, prefix: str) -> datetime | None:
    return next((e.at for e in entries if e.actor == actor and e.text.startswith(prefix)), None)


async def _marks(world: World, incident: Incident, variant: Variant, names: dict[str, tuple[str, str]]) -> None:
    entries = list(await world.services.incidents.store.timeline(incident.id))
    for mark, (actor, prefix) in names.items():
        moment = _first(entries, actor, prefix)
        if moment is not None:
            variant.marks[mark] = moment


async def _new_incident(world: World, known: int) -> Incident | None:
    found: list[Incident] = []

    async def opened() -> bool:
        found[:] = (await world.incidents())[known:]
        return bool(found)

    return found[0] if await world.until(opened, DETECT_TIMEOUT) else None


async def _settled(world: World, incident_id: str, *, resolved: bool | None = None) -> bool:
    async def done() -> bool:
        incident = await world.services.incidents.get(incident_id)
        state_ok = resolved is None or (incident.state.value == "resolved") == resolved
        return state_ok and await world.idle()

    return await world.until(done, RUN_TIMEOUT)


async def _sentry_quiet(world: World) -> bool:
    async def quiet() -> bool:
        return world.sentry is not None and not world.sentry.firing

    return await world.until(quiet, RUN_TIMEOUT)


# -- variant 1 ------------------------------------------------------------------------------------------
async def variant_bad_deploy(world: World) -> Variant:
    story = world.story
    variant = Variant(1, "a bad deploy (v2), rolled back")
    story.say()
    story.say(f"Variant 1 — {variant.title}", "demo")
    marker = _Marker(world)
    known = len(await world.incidents())
    variant.deployed_at = world.clock.now()
    story.start(variant.deployed_at)
    world.railway.deploy("api", meta=RELEASES["v2"].meta)
    story.line("demo", "railway up: v2 (1.3.0) is live — its Redis pool setting is wrong", tag="demo")
    incident = await _new_incident(world, known)
    if not variant.check("the error-rate alert opened an incident", incident is not None):
        return variant
    assert incident is not None
    variant.marks["detection"] = incident.created_at
    settled = await _settled(world, incident.id, resolved=True)
    variant.check("the playbook finished and resolved the incident", settled)
    variant.check("Sentry's alert resolved once the error rate fell", await _sentry_quiet(world))
    await world.until(world.idle, RUN_TIMEOUT)
    incident = await world.services.incidents.get(incident.id)
    variant.incidents = [incident]
    marker.fill(variant)
    await _marks(world, incident, variant, {"rollback": ("step:rollback", "railway.rollback ok"),
                                            "verified": ("step:verify", "verify ok")})
    if incident.resolved_at is not None:
        variant.marks["resolved"] = incident.resolved_at
    variant.detail = await world.get_json(f"/api/v1/incidents/{incident.id}")
    await _check_bad_deploy(world, variant, incident)
    return variant


async def _check_bad_deploy(world: World, variant: Variant, incident: Incident) -> None:
    v1 = [d.id for d in world.railway.history("api") if d.meta.get("release") == "v1"]
    variant.check("exactly one Railway rollback, to v1",
                  len(variant.rollbacks) == 1 and variant.rollbacks[0].get("id") in v1,
                  f"{len(variant.rollbacks)} rollback(s)")
    variant.check("the API runs v1 again and /health is healthy",
                  world.api.release.name == "v1" and world.api.checks()["redis"] == "healthy")
    public = list(world.statuspage.incidents.values())
    updates = [u["status"] for p in public for u in reversed(p["incident_updates"])]
    variant.check("Statuspage: incident identified, then resolved; API operational again",
                  len(public) == 1 and updates[:1] == ["identified"] and public[0]["status"] == "resolved"
                  and world.statuspage.component("API")["status"] == "operational", " -> ".join(updates))
    built_in = (await world.services.status.components())["api"]["status"]
    variant.check("built-in status page: api operational", built_in == "operational", built_in)
    ts = variant.slack_messages[0] if len(variant.slack_messages) == 1 else None
    in_place = bool(variant.slack_updates) and all(u.get("ts") == ts for u in variant.slack_updates)
    variant.check("one Slack message, updated in place", ts is not None and in_place,
                  f"{len(variant.slack_messages)} message(s), {len(variant.slack_updates)} update(s)")
    variant.check("nobody paged; the rollback sent as a PagerDuty change event",
                  not variant.triggers and len(variant.change_events) == 1)
    variant.check("the playbook verified /health and resolved the incident",
                  "verified" in variant.marks and incident.resolved_by == "playbook step resolve",
                  f"resolved by {incident.resolved_by}")
    timeline = variant.detail.get("timeline", [])
    kinds = {"detection": any(e["kind"] == "rule" for e in timeline),
             "rollback": any(e["actor"] == "step:rollback" and "ok" in e["text"] for e in timeline),
             "verification": any(e["actor"] == "step:verify" and "ok" in e["text"] for e in timeline),
             "resolution": any(e["kind"] == "state" and e["text"].startswith("resolved") for e in timeline)}
    variant.check("the timeline API lists detection, rollback, verification and resolution",
                  all(kinds.values()) and all(e.get("at") for e in timeline),
                  ", ".join(k for k, present in kinds.items() if not present))


# -- variant 2 ------------------------------------------------------------------------------------------
async def variant_database_down(world: World) -> Variant:
    story = world.story
    variant = Variant(2, "the database is down: the rollback does not help")
    story.say()
    story.say(f"Variant 2 — {variant.title}", "demo")
    world.clock.jump(JUMP)
    story.say(f"  (the demo clock jumps {int(JUMP.total_seconds() // 60)} minutes: variant 1's rollback is now "
              "outside the 30-minute rollback budget)")
    marker = _Marker(world)
    known = len(await world.incidents())
    variant.deployed_at = world.clock.now()
    story.start(variant.deployed_at)
    world.railway.deploy("api", meta=RELEASES["v3"].meta)
    world.api.database_up = False
    story.line("demo", "railway up: v3 (1.3.1), a good release — and at the same moment the database goes down",
               tag="demo")
    first = await _new_incident(world, known)
    if not variant.check("the error-rate alert opened an incident", first is not None):
        return variant
    assert first is not None
    variant.marks["detection"] = first.created_at

    async def paged() -> bool:
        return any(e.get("event_action") == "trigger" for e in world.pagerduty.events[marker.events:])

    variant.check("verification failed and on-call was paged", await world.until(paged, RUN_TIMEOUT)
                  and await world.until(world.idle, RUN_TIMEOUT))
    await _marks(world, first, variant, {"rollback": ("step:rollback", "railway.rollback ok"),
                                         "verify failed": ("step:verify", "verify failed"),
                                         "paged": ("step:page", "pagerduty.trigger ok")})
    second = await _second_firing(world, variant, first)
    marker.fill(variant)
    variant.incidents = [await world.services.incidents.get(first.id)]
    if second is not None:
        variant.incidents.append(await world.services.incidents.get(second.id))
    variant.detail = await world.get_json(f"/api/v1/incidents/{first.id}")
    _check_database_down(variant)
    return variant


async def _second_firing(world: World, variant: Variant, first: Incident) -> Incident | None:
    story = world.story
    world.api.database_up = True
    story.line("demo", "the database comes back for a moment…", tag="demo")
    closed = await _settled(world, first.id, resolved=True) and await _sentry_quiet(world)
    variant.check("the incident closed when Sentry resolved its alert", closed)
    known = len(await world.incidents())
    world.api.database_up = False
    story.line("demo", "…and fails again: the alert fires a second time, inside the rollback budget window",
               tag="demo")
    second = await _new_incident(world, known)
    if not variant.check("the second firing opened a new incident", second is not None):
        return None
    assert second is not None
    variant.marks["second firing"] = second.created_at

    async def handled() -> bool:
        entries = await world.services.incidents.store.timeline(second.id)
        return any(e.actor == "step:page on rollback failure" for e in entries) and await world.idle()

    variant.check("the second incident's playbook finished", await world.until(handled, RUN_TIMEOUT))
    await _marks(world, second, variant, {"refused": ("runner", "automation frozen"),
                                          "paged again": ("step:page on rollback failure", "pagerduty.trigger ok")})
    return second


def _check_database_down(variant: Variant) -> None:
    variant.check("exactly one Railway rollback (not repeated)", len(variant.rollbacks) == 1,
                  f"{len(variant.rollbacks)} rollback(s)")
    variant.check("verification failed after the rollback", "verify failed" in variant.marks)
    first = variant.incidents[0]
    mine = [t for t in variant.triggers if t.get("dedup_key") == first.key]
    first_pages = [t for t in variant.triggers if "still unhealthy" in t["payload"]["summary"]]
    variant.check("one PagerDuty trigger for the incident, with its key as dedup key",
                  len(first_pages) == 1 and first_pages[0].get("dedup_key") == first.key and bool(mine),
                  f"dedup_key {first.key}")
    if len(variant.incidents) < 2:
        variant.check("the second firing was handled", False)
        return
    second = variant.incidents[1]
    refused = second.automation_frozen and "remediation budget exhausted" in (second.frozen_reason or "")
    variant.check("the remediation budget refused a second rollback (automation frozen)", refused,
                  second.frozen_reason or "not frozen")
    second_pages = [t for t in variant.triggers if "failed or was refused" in t["payload"]["summary"]]
    variant.check("the second firing paged instead, with its incident's key",
                  len(second_pages) == 1 and second_pages[0].get("dedup_key") == second.key)
    variant.check("one page per incident", len(variant.triggers) == 2, f"{len(variant.triggers)} trigger(s)")


async def play(world: World) -> Report:
    """Both variants, in order, against `world`; the report says what happened and whether it was expected."""
    await world.until(_warm(world), 10)
    first = await variant_bad_deploy(world)
    second = await variant_database_down(world)
    return Report([first, second])


def _warm(world: World) -> Any:
    async def ready() -> bool:
        _, requests = world.api.error_rate()
        return requests >= 20 and world.api.health_checks > 0

    return ready


_MILESTONES = {
    1: [[("detection", "detection"), ("rollback", "rollback"), ("verified", "verified recovery"),
         ("resolved", "resolved")]],
    2: [[("detection", "detection"), ("rollback", "rollback"), ("verify failed", "verification failed"),
         ("paged", "on-call paged")],
        [("second firing", "second firing"), ("refused", "rollback refused by the budget"),
         ("paged again", "paged instead")]],
}


def milestones(variant: Variant) -> list[str]:
    """`bad deploy -> detection 1.3s -> rollback 1.6s -> ...`, one line per chain."""
    lines = []
    for i, chain in enumerate(_MILESTONES.get(variant.number, [])):
        parts = ["bad deploy" if variant.number == 1 else "deploy"] if i == 0 else []
        for mark, label in chain:
            seconds = variant.seconds(mark)
            parts.append(f"{label} {seconds:.1f}s" if seconds is not None else f"{label} —")
        lines.append(" -> ".join(parts))
    return lines


def print_summary(world: World, report: Report, took: float) -> None:
    story = world.story
    story.say()
    story.say("Summary (times from the deploy)", "demo")
    for variant in report.variants:
        verdict = "as expected" if variant.ok else "NOT as expected"
        story.say(f"  Variant {variant.number} — {variant.title}: {verdict}", "ok" if variant.ok else "fail")
        for line in milestones(variant):
            story.say(f"    {line}")
        for check in variant.checks:
            mark = "✓" if check.ok else "✗"
            detail = f" ({check.detail})" if check.detail and not check.ok else ""
            story.say(f"    {mark} {check.label}{detail}", "" if check.ok else "fail")
    if world.sentry is not None and world.sentry.errors:
        story.say(f"  Sentry alerts the daemon did not accept: {len(world.sentry.errors)} "
                  f"(last: {world.sentry.errors[-1]})", "fail")
    story.say()
    if report.ok:
        story.say(f"Both variants behaved as expected ({took:.0f}s in all).", "ok")
    else:
        story.say(f"Something did not go as expected ({took:.0f}s in all): see the ✗ lines above.", "fail")
