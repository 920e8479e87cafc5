"""The terminal story: what happens, as it happens, one line each, timed from the variant's deploy.

Lines come from the demo's own moves (deploys, the database switch), from what the stand-ins and the demo
API receive (Railway mutations, Statuspage incidents, Slack messages, PagerDuty events, /health answers),
from Sentry's alerts, and from the incident timeline itself (IncidentService.on_timeline): detection,
every playbook step, verification and the outcome.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TextIO

from responder.clock import Clock
from responder.incidents.model import Incident, TimelineEntry

__all__ = ["Story"]

_COLORS = {"demo": "1;36", "sentry": "35", "probe": "34", "incident": "1;33", "step": "33", "railway": "32",
           "statuspage": "32", "slack": "32", "pagerduty": "1;31", "ok": "1;32", "fail": "1;31"}
WIDTH = 160


class Story:
    def __init__(self, clock: Clock, out: TextIO | None = None, *, color: bool | None = None) -> None:
        self.clock = clock
        self.out = out if out is not None else sys.stdout
        self.color = self.out.isatty() if color is None else color
        self.origin: datetime | None = None
        #: every line printed, without colours (the tests read them)
        self.lines: list[str] = []

    def _paint(self, text: str, tag: str) -> str:
        code = _COLORS.get(tag)
        return f"\033[{code}m{text}\033[0m" if self.color and code else text

    def _emit(self, plain: str, painted: str) -> None:
        self.lines.append(plain)
        print(painted, file=self.out, flush=True)

    def say(self, text: str = "", tag: str = "") -> None:
        """A line of its own (headings, notes, the summary)."""
        self._emit(text, self._paint(text, tag) if tag else text)

    def start(self, at: datetime | None = None) -> None:
        """Times are measured from here (the variant's deploy)."""
        self.origin = at or self.clock.now()

    def elapsed(self, moment: datetime | None = None) -> float:
        if self.origin is None:
            return 0.0
        return ((moment or self.clock.now()) - self.origin).total_seconds()

    def line(self, who: str, text: str, *, tag: str | None = None, at: datetime | None = None) -> None:
        """A timed line: `  +1.3s  who         text`."""
        stamp = f"{'+' + format(self.elapsed(at), '.1f'):>6}s" if self.origin is not None else "       "
        text = text if len(text) <= WIDTH else text[:WIDTH - 1] + "…"
        plain = f"  {stamp}  {who:<12} {text}"
        painted = f"  {self._paint(stamp, 'dim')}  {self._paint(f'{who:<12}', tag or who)} {text}"
        self._emit(plain, painted)

    async def timeline(self, incident: Incident, entry: TimelineEntry, changed: bool) -> None:
        """IncidentService.on_timeline: every entry of every incident's story."""
        if entry.kind == "event":
            return  # the alerts are shown as they are sent
        actor = entry.actor.removeprefix("step:") if entry.kind == "step" else entry.actor
        tag = "incident" if entry.kind in ("rule", "state") else "step"
        text = entry.text
        if entry.kind == "state" and text.startswith("resolved"):
            tag = "ok"
        elif " failed" in text or " refused" in text or text.startswith("automation frozen"):
            tag = "fail"
        self.line(f"incident #{incident.id}", f"{actor}: {text}", tag=tag, at=entry.at)
