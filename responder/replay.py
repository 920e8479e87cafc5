"""`responder replay FILE`: run a recorded event capture through the rules on a virtual clock, in dry-run.

The capture is JSONL, one normalized Event per line, as `record: {path: ...}` makes the daemon write it.
Events are replayed in `received_at` order on responder.rehearsal.VirtualPipeline: the clock jumps to each
event's receive time, and every timer due in between (`for`, resolve delays, windows) fires at its own time,
so an hour of capture replays in about a second. Nothing is sent: each playbook step is rendered and recorded,
and the report says what would have happened, overall, per rule and per incident — derived from the recorded
steps, action names becoming verbs ("rolled back api 2 times, paged 1 time").

Dry-run rehearses every step, including `on_failure` branches; those are reported apart ("only if a step had
failed"). Remediation budgets (`automation.budgets`) are applied to the would-be changes in time order, and a
change a real run would refuse is said so.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from responder.actions import PROVIDERS, action_catalog
from responder.actions.base import VendorConfig
from responder.config.base import format_duration, parse_duration
from responder.config.loader import LoadedConfig
from responder.events import Event
from responder.incidents.model import Incident
from responder.rehearsal import Observed, StepRun, VirtualPipeline

__all__ = ["Capture", "Deed", "IncidentStory", "Progress", "ReplayReport", "RuleStory", "parse_moment", "phrase_of",
           "read_capture", "render", "replay"]

_CHANGES = {"rollback": "rolled back", "restart": "restarted", "redeploy": "redeployed", "promote": "promoted",
            "scale": "scaled"}
_TARGET_FIELDS = ("service", "app", "project", "deployment")
_PHRASES = {
    "pagerduty.trigger": "paged", "pagerduty.acknowledge": "acknowledged the page",
    "pagerduty.resolve": "resolved the page", "pagerduty.change": "sent a change event to PagerDuty",
    "slack.post": "posted to Slack", "slack.reply": "replied in Slack", "slack.update": "updated the Slack message",
    "status.set": "updated the status page", "status.incident": "updated the status page",
    "status.resolve": "updated the status page", "statuspage.set": "updated Statuspage",
    "statuspage.incident": "updated Statuspage", "statuspage.resolve": "updated Statuspage",
    "http.request": "sent an HTTP request", "shell.run": "ran a command", "incident.resolve": "resolved the incident",
    "verify": "checked health", "approval": "asked for approval",
}
#: actions that change nothing outside responder's own timeline
_QUIET = frozenset({"log", "wait", "incident.note"})


@dataclass
class Capture:
    events: list[Event]
    #: lines that are not events (`file:line: why`), skipped
    skipped: list[str] = field(default_factory=list)
    duplicates: int = 0


def read_capture(path: Path) -> Capture:
    """The events of a JSONL capture in `received_at` order; a repeated delivery id is kept once."""
    capture = Capture([])
    seen: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = Event.model_validate_json(line)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in first["loc"]) or "line"
                capture.skipped.append(f"{path}:{number}: not an event: {where}: {first['msg']}")
                continue
            if event.delivery_id in seen:
                capture.duplicates += 1
                continue
            seen.add(event.delivery_id)
            capture.events.append(event)
    capture.events.sort(key=lambda e: e.received_at)
    return capture


def parse_moment(raw: str, first: datetime) -> datetime:
    """An ISO 8601 time (UTC when no offset is given), or an offset from the capture's first event: 15m, +1h."""
    text = raw.strip()
    try:
        return first + parse_duration(text.removeprefix("+"))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{raw!r} is neither a time (2024-11-21T09:30:00Z) nor an offset (15m)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Progress:
    """A plain-text progress bar: redrawn in place on a terminal, a line per quarter otherwise."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.tty = stream.isatty()
        self.clock = clock
        self.drawn_at = 0.0
        self.quarter = -1

    def update(self, done: int, moment: datetime | None, *, final: bool = False) -> None:
        share = min(done / self.total, 1.0)
        if self.tty:
            now = self.clock()
            if not final and now - self.drawn_at < 0.05:
                return
            self.drawn_at = now
        else:
            quarter = int(share * 4)
            if quarter == self.quarter:
                return
            self.quarter = quarter
        filled = int(share * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        when = moment.strftime(" %H:%M:%S") if moment else ""
        line = f"replaying [{bar}] {share:4.0%} {done}/{self.total} events{when}"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


# -- what would have happened -----------------------------------------------------------------------
@dataclass(frozen=True)
class Deed:
    """One step that would have sent something, said in words."""

    phrase: str
    step: StepRun
    contingent: bool  # in an on_failure branch: only if a step had failed
    refused: str | None = None  # over a remediation budget: a real run would refuse it


@dataclass
class IncidentStory:
    incident: Incident
    deeds: list[Deed]


@dataclass
class RuleStory:
    rule_id: str
    fired: int = 0
    went_pending: int = 0
    reset: int = 0
    resolved: int = 0
    silenced: int = 0
    incidents: list[str] = field(default_factory=list)


@dataclass
class ReplayReport:
    path: str
    start: datetime
    end: datetime
    events: list[Event]
    incidents: list[IncidentStory]
    rules: list[RuleStory]
    seconds: float
    unconfigured: list[str]
    skipped: list[str] = field(default_factory=list)
    duplicates: int = 0

    def deeds(self) -> list[Deed]:
        return [d for story in self.incidents for d in story.deeds]


def phrase_of(step: StepRun) -> str | None:
    """The verb phrase for a step's action ("rolled back api", "paged"); None for bookkeeping steps."""
    if step.action in _QUIET:
        return None
    provider, _, verb = step.action.rpartition(".")
    if provider and verb in _CHANGES:
        params = step.params or {}
        target = next((str(params[f]) for f in _TARGET_FIELDS if params.get(f)), provider)
        return f"{_CHANGES[verb]} {target}"
    return _PHRASES.get(step.action, f"ran {step.action}")


def _budget_refusals(loaded: LoadedConfig, pipeline: VirtualPipeline, steps: list[StepRun]) -> dict[int, str]:
    """Which would-be changes (by position in `steps`) a remediation budget would have refused, in time order."""
    catalog = action_catalog()
    runner = pipeline.services.runner
    used: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    refused: dict[int, str] = {}
    order = sorted(range(len(steps)), key=lambda i: steps[i].started_at or datetime.min.replace(tzinfo=UTC))
    for i in order:
        step = steps[i]
        if step.status != "dry-run" or step.on_failure_of is not None or step.action not in catalog:
            continue
        provider_cls, verb, params_model = catalog[step.action]
        planner = runner.providers.get(provider_cls.name) or runner.planners.get(provider_cls.name)
        if planner is None:
            continue
        try:
            change = planner.remediation(verb, params_model.model_validate(step.params or {}))
        except (ValidationError, AssertionError):
            continue
        budget = loaded.config.automation.budgets.get(change.kind) if change else None
        if change is None or budget is None or step.started_at is None:
            continue
        window = used[(change.kind, change.target)]
        recent = [t for t in window if t > step.started_at - budget.per]
        if len(recent) >= budget.max:
            refused[i] = (f"over automation.budgets.{change.kind}: at most {budget.max} per "
                          f"{format_duration(budget.per)} for {change.target}")
        else:
            window.append(step.started_at)
    return refused


def _rule_stories(loaded: LoadedConfig, observed: list[Observed], incidents: list[Incident]) -> list[RuleStory]:
    stories = {rule.id: RuleStory(rule.id) for rule in loaded.rules if rule.enabled}
    previous: dict[str, str] = {}
    for item in observed:
        decision = item.decision
        story = stories.setdefault(decision.rule_id, RuleStory(decision.rule_id))
        if decision.result == "fire":
            story.fired += 1
        elif decision.result == "pending" and previous.get(decision.key) != "pending":
            story.went_pending += 1
        elif decision.result == "reset":
            story.reset += 1
        elif decision.result == "resolve":
            story.resolved += 1
        elif decision.result == "silenced":
            story.silenced += 1
        previous[decision.key] = decision.result
    for incident in incidents:
        stories.setdefault(incident.rule_id, RuleStory(incident.rule_id)).incidents.append(incident.id)
    return list(stories.values())


def _unconfigured(loaded: LoadedConfig) -> list[str]:
    """Vendors without credentials in the real configuration: a real run would skip their steps."""
    out = []
    for cls in PROVIDERS:
        if cls.Config is None:
            continue
        config = getattr(loaded.config.providers, cls.name, None)
        if not (isinstance(config, VendorConfig) and config.has_credentials()):
            out.append(cls.name)
    return out


async def replay(loaded: LoadedConfig, capture: Capture, path: str, *, start: datetime | None = None,
                 end: datetime | None = None, progress: TextIO | None = None) -> ReplayReport:
    """Replay the capture's events between `start` and `end` (inclusive) and say what would have happened."""
    began = time.perf_counter()
    events = [e for e in capture.events
              if (start is None or e.received_at >= start) and (end is None or e.received_at <= end)]
    first = start or (events[0].received_at if events else datetime.now(UTC))
    last = end or (events[-1].received_at if events else first)
    bar = Progress(len(events), progress) if progress is not None else None
    async with VirtualPipeline.start(loaded, first) as pipeline:
        for done, event in enumerate(events, 1):
            await pipeline.advance(event.received_at)
            await pipeline.feed([event])
            if bar is not None:
                bar.update(done, event.received_at)
        await pipeline.advance(last)
        await pipeline.settle()
        if bar is not None:
            bar.update(len(events), last, final=True)
        incidents = await pipeline.incidents()
        steps_of = {incident.id: await pipeline.steps(incident.id) for incident in incidents}
        flat = [s for incident in incidents for s in steps_of[incident.id]]
        refusals = _budget_refusals(loaded, pipeline, flat)
        stories = []
        position = 0
        for incident in incidents:
            deeds = []
            for step in steps_of[incident.id]:
                phrase = phrase_of(step)
                if step.status == "dry-run" and phrase is not None:
                    deeds.append(Deed(phrase, step, step.on_failure_of is not None, refusals.get(position)))
                position += 1
            stories.append(IncidentStory(incident, deeds))
        rules = _rule_stories(loaded, pipeline.observed, incidents)
    return ReplayReport(path, first, last, events, stories, rules, time.perf_counter() - began,
                        _unconfigured(loaded), capture.skipped, capture.duplicates)


# -- saying it --------------------------------------------------------------------------------------
def _times(n: int) -> str:
    return f"{n} time" if n == 1 else f"{n} times"


def _count_phrases(deeds: Iterable[Deed]) -> str:
    counts = Counter(d.phrase for d in deeds)
    order = sorted(counts, key=lambda p: (not any(p.startswith(v + " ") for v in _CHANGES.values()), p != "paged"))
    return ", ".join(f"{p} {_times(counts[p])}" for p in order)


def _would(deeds: Sequence[Deed], indent: str) -> list[str]:
    sure = [d for d in deeds if not d.contingent]
    contingent = [d for d in deeds if d.contingent]
    lines = [f"{indent}would have: {_count_phrases(sure) or 'done nothing'}"]
    refused = Counter((d.phrase, d.refused) for d in sure if d.refused)
    for (phrase, reason), n in refused.items():
        lines.append(f"{indent}  of which {phrase} {_times(n)} would have been refused ({reason}): a real run "
                     "freezes the incident's automation and takes the step's on_failure path")
    if contingent:
        lines.append(f"{indent}only if a step had failed: {_count_phrases(contingent)}")
    return lines


def _clock(moment: datetime, day: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%H:%M:%S") if moment.date() == day.date() else moment.strftime("%Y-%m-%d %H:%M:%S")


def render(report: ReplayReport) -> str:
    lines: list[str] = []
    by_source = Counter(e.source for e in report.events)
    sources = ", ".join(f"{s} {n}" for s, n in by_source.most_common())
    span = format_duration(report.end - report.start) if report.end >= report.start else "0s"
    start = report.start.astimezone(UTC)
    lines.append(f"replayed {len(report.events)} events from {report.path} ({sources or 'none'})")
    lines.append(f"  {start.strftime('%Y-%m-%d %H:%M:%S')} -> {_clock(report.end, start)} UTC: {span} of virtual "
                 f"time in {report.seconds:.1f}s, dry-run (nothing was sent)")
    if report.duplicates:
        lines.append(f"  {report.duplicates} repeated deliveries skipped")
    for problem in report.skipped[:5]:
        lines.append(f"  skipped {problem}")
    if len(report.skipped) > 5:
        lines.append(f"  ... and {len(report.skipped) - 5} more lines that are not events")
    lines.append("")
    lines += _would(report.deeds(), "")
    used = sorted({d.step.action.split(".")[0] for d in report.deeds()} & set(report.unconfigured))
    if used:
        lines.append(f"note: {', '.join(used)} {'is' if len(used) == 1 else 'are'} not configured in the real "
                     "configuration: a real run would skip those steps")
    lines += ["", "per rule:"]
    width = max((len(r.rule_id) for r in report.rules), default=0)
    for rule in report.rules:
        facts = [f"fired {_times(rule.fired)}"] if rule.fired or not rule.went_pending else []
        if rule.went_pending:
            facts.append(f"pending {_times(rule.went_pending)}" + (f" ({rule.reset} cleared before firing)"
                                                                    if rule.reset else ""))
        if rule.resolved:
            facts.append(f"resolved {_times(rule.resolved)}")
        if rule.silenced:
            facts.append(f"silenced {_times(rule.silenced)}")
        deeds = [d for s in report.incidents if s.incident.rule_id == rule.rule_id for d in s.deeds]
        sure = _count_phrases(d for d in deeds if not d.contingent)
        ids = " ".join(f"#{i}" for i in rule.incidents)
        lines.append(f"  {rule.rule_id:<{width}}  {', '.join(facts)}" + (f"; incidents {ids}" if ids else "")
                     + (f": {sure}" if sure else ""))
    lines += ["", "per incident:"]
    if not report.incidents:
        lines.append("  none")
    for story in report.incidents:
        incident = story.incident
        opened = _clock(incident.created_at, start)
        if incident.resolved_at is not None:
            took = format_duration(incident.resolved_at - incident.created_at)
            when = f"{opened} -> {_clock(incident.resolved_at, start)} ({took}, {incident.resolved_by})"
        else:
            when = f"{opened} -> still open"
        lines.append(f"  #{incident.id} {incident.rule_id} [{incident.severity.value}] {incident.title}")
        lines.append(f"      {when}")
        lines += _would(story.deeds, "      ")
    return "\n".join(lines) + "\n"

