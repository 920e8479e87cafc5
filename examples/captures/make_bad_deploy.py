"""Writes bad-deploy.jsonl: one hour of what the daemon records (`record: {path: ...}`) around a bad deploy.

The events are made the way the daemon makes them — the webhook bodies go through the Sentry and UptimeRobot
adapters, the probe results through the probes' own `probe_event` — with receive times on a scripted timeline
(2024-11-21, UTC):

  09:00  api-health (every 30s) and sync-worker-failed-jobs (every 1m) healthy
  09:12  release v2 goes out: Sentry warns (3.1%), /health starts answering 503, failed jobs pile up
  09:13  Sentry critical: api error rate 7.00%            -> api-error-rate fires (roll back the API)
  09:13  UptimeRobot: "web app" down                      -> uptime-monitor-down fires (page on-call)
  09:17  /health has failed for 5 minutes                 -> api-health-failing fires (restart the workers)
  09:20  /health healthy again; 09:21 web app up; 09:24 Sentry resolved: everything resolves
  09:46  release v3: Sentry critical at 9.40%             -> api-error-rate fires again (33 minutes later)
  09:46  /health fails for 4 minutes only                 -> api-health-failing pending, never fires
  09:55  Sentry resolved
  10:00  end

Run from the repository root: python3 examples/captures/make_bad_deploy.py
"""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from multidict import CIMultiDict, CIMultiDictProxy

from responder.config.loader import load_config
from responder.events import Event
from responder.ingest.base import IngestRequest
from responder.ingest.sentry import SentryAdapter, SentryConfig
from responder.ingest.uptimerobot import UptimeRobotAdapter, UptimeRobotConfig
from responder.probes.checks import CheckResult
from responder.probes.model import RedisCheck
from responder.probes.service import probe_event

ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = ROOT / "tests" / "payloads"
START = datetime(2024, 11, 21, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def sentry(minutes: float, action: str, text: str, identifier: str) -> list[Event]:
    payload = copy.deepcopy(json.loads((PAYLOADS / "sentry" / "metric_alert_error_rate_critical.json").read_text()))
    payload["action"] = action
    payload["data"]["description_title"] = f"{action.capitalize()}: api error rate"
    payload["data"]["description_text"] = text
    alert = payload["data"]["metric_alert"]
    alert["identifier"] = identifier
    stamp = at(minutes).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    if action == "resolved":
        alert["date_closed"] = stamp
    else:
        alert["date_detected"] = alert["date_started"] = stamp
    request = IngestRequest(json.dumps(payload).encode(), CIMultiDictProxy(CIMultiDict(
        {"Sentry-Hook-Resource": "metric_alert"})), received_at=at(minutes) + timedelta(seconds=2))
    return SentryAdapter(SentryConfig()).parse(request)


def uptimerobot(minutes: float, alert_type: str, details: str, duration: str = "0") -> list[Event]:
    payload = json.loads((PAYLOADS / "uptimerobot" / "down.json").read_text())
    payload.update(monitorFriendlyName="web app", monitorURL="https://app.tvl.com/", alertType=alert_type,
                   alertTypeFriendlyName="Down" if alert_type == "1" else "Up", alertDetails=details,
                   alertDuration=duration, alertDateTime=str(int(at(minutes).timestamp())))
    request = IngestRequest(json.dumps(payload).encode(), CIMultiDictProxy(CIMultiDict()),
                            received_at=at(minutes) + timedelta(seconds=1))
    return UptimeRobotAdapter(UptimeRobotConfig()).parse(request)


def main() -> None:
    probes = load_config(ROOT / "responder.yaml", env={}).probes
    health, jobs = probes["api-health"], probes["sync-worker-failed-jobs"]
    events: list[Event] = []
    for i in range(120):  # api-health every 30 s
        minutes = i / 2
        now = at(minutes)
        failing = 12 <= minutes < 20 or 46 <= minutes < 50
        result = CheckResult(False, "HTTP 503: status unhealthy (checks.database: unhealthy)", 503.0, 41.0) \
            if failing else CheckResult(True, "HTTP 200", 80.0 + (i * 7) % 40, 80.0 + (i * 7) % 40)
        events.append(probe_event(health, health.slot(now), now, result))
    assert isinstance(jobs.check, RedisCheck)
    limit = jobs.check.max if jobs.check.max is not None else 50
    backlog = [3, 2, 4, 3, 2, 3, 4, 2, 3, 3, 2, 4, 9, 21, 38, 57, 74, 81, 64, 40, 22, 11, 6, 4]
    for minute in range(60):  # failed jobs every minute: pile up during the bad release, drain after the restart
        now = at(minute)
        length = backlog[minute] if minute < len(backlog) else 2 + minute % 3
        ok = length <= limit
        reason = f"length {length}" + ("" if ok else f" above max {limit}")
        events.append(probe_event(jobs, jobs.slot(now), now, CheckResult(ok, reason, float(length), 3.0)))
    events += sentry(12.1, "warning", "3.10% failure rate in the last 10 minutes", "64")
    events += sentry(13.1, "critical", "7.00% failure rate in the last 10 minutes", "64")
    events += uptimerobot(13.5, "1", "HTTP 503 - Service Unavailable")
    events += uptimerobot(21, "2", "HTTP 200 - OK", duration="450")
    events += sentry(24.7, "resolved", "0.80% failure rate in the last 10 minutes", "64")
    events += sentry(46.2, "critical", "9.40% failure rate in the last 10 minutes", "65")
    events += sentry(55, "resolved", "0.60% failure rate in the last 10 minutes", "65")
    events.sort(key=lambda e: e.received_at)
    out = Path(__file__).with_name("bad-deploy.jsonl")
    with out.open("w", encoding="utf-8") as file:
        for n, event in enumerate(events):  # stable ids, so the file only changes when the story does
            stable = "ev_" + hashlib.sha256(f"bad-deploy:{n}".encode()).hexdigest()[:24]
            file.write(event.model_copy(update={"id": stable}).model_dump_json() + "\n")
    print(f"wrote {len(events)} events to {out}")


if __name__ == "__main__":
    main()
