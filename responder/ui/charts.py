"""Numbers for the inline SVG charts (the templates draw them; everything here is plain numbers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from responder.store.event_rate import MINUTE_MS, EventRate

__all__ = ["Bar", "BarChart", "Sparkline", "event_chart", "sparkline"]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    peak: int
    total: int
    first_label: str
    middle_label: str
    last_label: str
    truncated: bool


def event_chart(rate: EventRate, width: int = 720, height: int = 120) -> BarChart:
    """One bar per minute, scaled to the busiest minute; labels in UTC."""
    n = max(len(rate.counts), 1)
    peak = max(rate.counts, default=0)
    slot = width / n
    plot = height - 2
    bars = []
    for i, count in enumerate(rate.counts):
        at = datetime.fromtimestamp((rate.start_ms + i * MINUTE_MS) / 1000, UTC)
        h = plot * count / peak if peak else 0.0
        if count and h < 1.5:
            h = 1.5  # a minute with any event stays visible
        bars.append(Bar(round(i * slot + 0.5, 2), round(height - h, 2), round(max(slot - 1, 1), 2), round(h, 2),
                        f"{at:%H:%M} UTC: {count} event{'s' if count != 1 else ''}"))

    def label(i: int) -> str:
        return f"{datetime.fromtimestamp((rate.start_ms + i * MINUTE_MS) / 1000, UTC):%H:%M}"

    return BarChart(width, height, bars, peak, rate.total, label(0), label(n // 2), label(n - 1), rate.truncated)


@dataclass(frozen=True)
class Sparkline:
    width: int
    height: int
    points: str  # polyline points of the latency line
    failing: list[tuple[float, str]]  # x and tooltip of each failing result
    ticks: list[tuple[float, str, str]]  # left x, css class (ok|failing) and tooltip of every result
    max_latency: float
    tick_width: float


def sparkline(results: list[dict[str, Any]], width: int = 180, height: int = 32) -> Sparkline:
    """Latency over the last results (oldest left), with a red tick under each failing one."""
    ordered = list(reversed(results))  # the store gives newest first
    latencies = [float(r.get("latency_ms") or 0) for r in ordered]
    top = max(latencies, default=0.0) or 1.0
    n = len(ordered)
    pad = 3.0
    step = (width - 2 * pad) / max(n - 1, 1)
    tick = round(max(min(step * 0.7, 8.0), 2.0), 2)
    plot = height - 8  # a band at the bottom holds the status ticks
    points = []
    ticks = []
    for i, (result, latency) in enumerate(zip(ordered, latencies, strict=True)):
        x = round(pad + i * step if n > 1 else width / 2, 2)
        points.append(f"{x},{round(plot - plot * latency / top + 1, 2)}")
        status = str(result.get("status", ""))
        tip = f"{result.get('at', '')}: {status}, {latency:g} ms"
        if result.get("reason"):
            tip += f" ({result['reason']})"
        ticks.append((round(x - tick / 2, 2), "failing" if status == "failing" else "ok", tip))
    return Sparkline(width, height, " ".join(points), [(x, tip) for x, cls, tip in ticks if cls == "failing"], ticks,
                     max(latencies, default=0.0), tick)


def short_span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
