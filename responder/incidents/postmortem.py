"""The postmortem draft of an incident, in Markdown: summary, key durations, timeline, actions, people.

Durations are measured from the incident's creation:
- time to acknowledge: `acknowledged_at` (a person, the API, Slack or PagerDuty);
- time to mitigate: the first remediation step (an action that changes the system: rollback, restart,
  promote; what the remediation budget counts) that finished ok in a real run; without one, the end of
  the first playbook run that completed while the incident was mitigating;
- time to resolve: `resolved_at`.
Text that came from alerts is escaped so that a Markdown renderer shows it as text (no HTML, no links).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from responder.actions import action_catalog
from responder.actions.base import ActionProvider
from responder.incidents.model import Incident, TimelineEntry
from responder.playbooks.model import Playbook
from responder.store.runs import RunStore

__all__ = ["Durations", "durations", "format_span", "incident_runs", "is_remediation", "postmortem_markdown"]

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#!])")


def md(text: object, limit: int = 500) -> str:
    """One line of untrusted text, escaped for Markdown (CommonMark backslash escapes)."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", flat)


def format_span(span: timedelta | None) -> str:
    """`1 h 02 min 05 s`, `3 min 10 s`, `4.2 s`; an em dash for None."""
    if span is None:
        return "—"
    seconds = span.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds % 1 else f"{int(seconds)} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h {minutes:02d} min"
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s"


_REMEDIATION: dict[str, bool] = {}


def is_remediation(action: str) -> bool:
    """Whether an action changes the system (its provider declares a remediation: rollback, restart...)."""
    if not _REMEDIATION:
        for name, (provider, _verb, _params) in action_catalog().items():
            _REMEDIATION[name] = provider.remediation is not ActionProvider.remediation
    return _REMEDIATION.get(action, False)


async def incident_runs(runs: RunStore, playbooks: Mapping[str, Playbook], incident_id: str) -> list[dict[str, Any]]:
    """Every playbook run of an incident with its step records, in playbook order (repeats after their step)."""
    out = []
    for run_id in await runs.for_incident(incident_id):
        run = await runs.get(run_id)
        if run is None:
            continue
        playbook = playbooks.get(run["playbook"])
        steps = []
        if playbook:
            for step in playbook.all_steps():
                names = [step.name]
                if step.repeat_every is not None:
                    count = await runs.repeat_count(run_id, step.name)
                    names += [f"{step.name} (repeat {i})" for i in range(1, count + 1)]
                for name in names:
                    record = await runs.step_record(run_id, name)
                    if record:
                        steps.append(record)
        run.pop("event", None)
        out.append({**run, "steps": steps})
    return out


def _at(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Durations:
    acknowledge: timedelta | None
    mitigate: timedelta | None
    mitigate_basis: str  # what marked mitigation, for the reader
    resolve: timedelta | None
    #: (start, end or None while it lasts, how it ended) for each period the incident spent mitigating
    mitigating_periods: list[tuple[datetime, datetime | None, str]]


def _periods(timeline: list[TimelineEntry]) -> list[tuple[datetime, datetime | None, str, str]]:
    """Mitigating periods from the timeline: `playbook X started` ... `playbook X <outcome>`."""
    periods: list[tuple[datetime, datetime | None, str, str]] = []
    open_: dict[str, datetime] = {}
    for entry in timeline:
        if entry.kind != "playbook" or not entry.actor.startswith("playbook:"):
            continue
        playbook = entry.actor.removeprefix("playbook:")
        prefix = f"playbook {playbook} "
        if not entry.text.startswith(prefix):
            continue
        outcome = entry.text[len(prefix):]
        if outcome == "started":
            open_.setdefault(playbook, entry.at)
        elif playbook in open_:
            periods.append((open_.pop(playbook), entry.at, playbook, outcome))
    periods += [(start, None, playbook, "still running") for playbook, start in open_.items()]
    return sorted(periods, key=lambda p: p[0])


def durations(incident: Incident, timeline: list[TimelineEntry], runs: list[dict[str, Any]]) -> Durations:
    created = incident.created_at
    ack = incident.acknowledged_at - created if incident.acknowledged_at else None
    resolve = incident.resolved_at - created if incident.resolved_at else None
    mitigated: tuple[datetime, str] | None = None
    for run in runs:
        if run.get("dry_run"):
            continue
        for step in run["steps"]:
            finished = _at(step.get("finished_at"))
            ok = step.get("status") == "ok" and finished and is_remediation(str(step.get("action")))
            if ok and finished and (mitigated is None or finished < mitigated[0]):
                mitigated = (finished, f"step {step['step']} ({step['action']}) of playbook {run['playbook']} "
                                       "succeeded")
    periods = _periods(timeline)
    if mitigated is None:
        done = [(end, playbook) for _start, end, playbook, outcome in periods if end and outcome == "completed"]
        if done:
            end, playbook = min(done)
            mitigated = (end, f"playbook {playbook} completed")
    basis = mitigated[1] if mitigated else "no remediation step succeeded and no playbook run completed"
    return Durations(ack, mitigated[0] - created if mitigated else None, basis, resolve,
                     [(start, end, outcome) for start, end, _playbook, outcome in periods])


def _time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def _offset(moment: datetime, origin: datetime) -> str:
    span = moment - origin
    sign = "-" if span < timedelta(0) else "+"
    return sign + format_span(abs(span))


def _step_line(step: Mapping[str, Any]) -> str:
    status = str(step.get("status", "?"))
    took = step.get("duration_ms")
    span = f" in {format_span(timedelta(milliseconds=int(took)))}" if isinstance(took, int | float) else ""
    detail = step.get("summary") or step.get("error") or step.get("reason") or ""
    line = f"- {md(step.get('step', '?'))} (`{md(step.get('action', '?'), 80)}`): **{md(status, 40)}**{span}"
    if detail:
        line += f" — {md(detail, 300)}"
    if step.get("attempts") and int(step["attempts"]) > 1:
        line += f" ({int(step['attempts'])} attempts)"
    return line


def _who_did_what(timeline: list[TimelineEntry]) -> list[str]:
    by_actor: dict[str, list[str]] = {}
    for entry in timeline:
        by_actor.setdefault(entry.actor, []).append(entry.text)
    lines = ["| who | entries | what |", "| --- | ---: | --- |"]
    for actor, texts in by_actor.items():
        distinct = list(dict.fromkeys(texts))
        what = "; ".join(md(t, 120) for t in distinct[:5])
        if len(distinct) > 5:
            what += f"; (+{len(distinct) - 5} more)"
        lines.append(f"| {md(actor, 100)} | {len(texts)} | {what} |")
    return lines


def postmortem_markdown(incident: Incident, timeline: list[TimelineEntry], runs: list[dict[str, Any]],
                        now: datetime) -> str:
    """The whole document. `now` gives the running durations of an open incident."""
    d = durations(incident, timeline, runs)
    created = incident.created_at
    out = [f"# Postmortem: incident #{md(incident.id)} — {md(incident.title)}", ""]
    out += ["## Summary", "",
            f"- **Severity:** {md(incident.severity.value)}",
            f"- **Service:** {md(incident.service or '—')}",
            f"- **Rule:** {md(incident.rule_id)}" + (f" (source: {md(incident.source)})" if incident.source else ""),
            f"- **State:** {md(incident.state.value)}",
            f"- **Opened:** {_time(created)}",
            f"- **Acknowledged:** {_time(incident.acknowledged_at)}"
            + (f" by {md(incident.acknowledged_by)}" if incident.acknowledged_by else ""),
            f"- **Resolved:** {_time(incident.resolved_at)}"
            + (f" by {md(incident.resolved_by)}" if incident.resolved_by else ""),
            f"- **Events:** {incident.event_count}"]
    if incident.summary:
        out.append(f"- **Alert summary:** {md(incident.summary)}")
    if incident.labels:
        out.append("- **Labels:** " + ", ".join(f"{md(k)}={md(v)}" for k, v in sorted(incident.labels.items())))
    if incident.url:
        out.append(f"- **Alert link:** `{md(incident.url, 300).replace('`', '')}`")
    if incident.automation_frozen:
        out.append(f"- **Automation frozen:** {md(incident.frozen_reason or 'yes')}")
    still = f" (still open: {format_span(now - created)} so far)" if incident.state.is_open else ""
    out += ["", "## Key durations", "", "| measure | duration | |", "| --- | --- | --- |",
            f"| Time to acknowledge | {format_span(d.acknowledge)} | "
            + (f"at {_time(incident.acknowledged_at)} |" if incident.acknowledged_at else "not acknowledged |"),
            f"| Time to mitigate | {format_span(d.mitigate)} | {md(d.mitigate_basis)} |",
            f"| Time to resolve | {format_span(d.resolve)} | "
            + (f"at {_time(incident.resolved_at)} |" if incident.resolved_at else f"not resolved{still} |")]
    if d.mitigating_periods:
        out += ["", "Mitigating periods (a playbook running):", ""]
        for start, end, outcome in d.mitigating_periods:
            span = format_span(end - start) if end else "ongoing"
            out.append(f"- {_time(start)} → {_time(end)} ({span}): {md(outcome)}")
    out += ["", "## Timeline", "", "| time (UTC) | since open | who | what |", "| --- | --- | --- | --- |"]
    for entry in timeline:
        out.append(f"| {entry.at.strftime('%Y-%m-%d %H:%M:%S')} | {_offset(entry.at, created)} | "
                   f"{md(entry.actor, 100)} | {md(entry.text, 300)} |")
    out += ["", "## Actions taken", ""]
    if not runs:
        out += ["No playbook ran.", ""]
    for run in runs:
        kind = "dry-run" if run.get("dry_run") else "run"
        who = f", started by {md(run['actor'])}" if run.get("actor") else ""
        out.append(f"### {md(run.get('playbook', '?'))} — {md(run.get('phase', '?'))} {kind}: "
                   f"{md(run.get('status') or '?')}{who}")
        out.append("")
        out += [_step_line(step) for step in run["steps"]] or ["- (no step recorded)"]
        out.append("")
    out += ["## Who did what", "", *_who_did_what(timeline), ""]
    out += ["## Follow-ups", "", "- [ ] Root cause:", "- [ ] What would have caught it sooner:",
            "- [ ] Action items:", ""]
    return "\n".join(out)
