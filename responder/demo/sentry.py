"""Sentry-style metric alerts about the demo API's error rate, posted to the daemon's /hooks/sentry.

The payload is Sentry's integration-platform `metric_alert` webhook, shaped like the sample in
tests/payloads/sentry/metric_alert_error_rate_critical.json (action critical/resolved, data.metric_alert
with its alert_rule and triggers, `description_text` such as "40.00% failure rate in the last 10
seconds"), signed with the integration's client secret (`Sentry-Hook-Signature`, HMAC-SHA256 of the body).

Like a Sentry alert rule on `failure_rate()` with a 5% critical threshold, the monitor fires once when the
error rate over its window rises above the threshold and resolves once when it falls back under it;
each firing is a new Sentry incident (a new `identifier`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp

from responder.clock import Clock
from responder.demo.target import DemoApi

__all__ = ["SentryMonitor", "metric_alert"]

THRESHOLD = 0.05


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def metric_alert(action: str, *, rate: float, identifier: int, started: datetime, now: datetime,
                 window_seconds: int) -> dict[str, Any]:
    """Sentry's metric_alert webhook body for the `api error rate` alert rule."""
    critical = action == "critical"
    rule = {"id": "318", "name": "api error rate", "organization_id": "44012", "status": 0, "query_type": 1,
            "dataset": "transactions", "query": "event.type:transaction", "aggregate": "failure_rate()",
            "threshold_type": 0, "resolve_threshold": None, "time_window": 10, "environment": "production",
            "resolution": 1, "threshold_period": 1, "projects": ["api"], "owner": None, "comparison_delta": None,
            "date_modified": "2024-10-02T14:03:11.482113Z", "date_created": "2024-10-02T14:03:11.482120Z",
            "triggers": [{"id": "5581", "alert_rule_id": "318", "label": "critical", "threshold_type": 0,
                          "alert_threshold": THRESHOLD, "resolve_threshold": None,
                          "date_created": "2024-10-02T14:03:11.493221Z", "actions": []}]}
    return {
        "action": action,
        "installation": {"uuid": "2f1c7c1e-6d0a-4a7e-9a55-3b1d0c9e8f21"},
        "actor": {"type": "application", "id": "sentry", "name": "Sentry"},
        "data": {
            "description_title": f"{'Critical' if critical else 'Resolved'}: api error rate",
            "description_text": f"{rate * 100:.2f}% failure rate in the last {window_seconds} seconds",
            "web_url": f"https://sentry.io/organizations/acme/alerts/rules/details/318/?alert={identifier}"
                       "&referrer=metric_alert&detection_type=static",
            "metric_alert": {
                "id": str(91200 + identifier), "identifier": str(identifier), "organization_id": "44012",
                "projects": ["api"], "status": 20 if critical else 2, "status_method": 3, "type": 2,
                "title": "api error rate", "date_started": _when(started), "date_detected": _when(started),
                "date_created": _when(started), "date_closed": None if critical else _when(now),
                "alert_rule": rule,
            },
        },
    }


class SentryMonitor:
    """Watches the API's error rate and posts critical / resolved metric alerts to responder."""

    def __init__(self, api: DemoApi, http: aiohttp.ClientSession, hook_url: str, client_secret: str, clock: Clock,
                 *, every: float = 0.25, on_alert: Callable[[str, float, int], None] | None = None) -> None:
        self.api = api
        self.http = http
        self.hook_url = hook_url
        self.client_secret = client_secret
        self.clock = clock
        self.every = every
        self.on_alert = on_alert
        self.identifier = 63
        self.firing = False
        self.started: datetime | None = None
        #: (action, identifier, rate, when) of every alert sent
        self.sent: list[tuple[str, int, float, datetime]] = []
        #: deliveries the daemon did not accept (retried on the next check)
        self.errors: list[str] = []

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except (aiohttp.ClientError, OSError) as exc:  # the daemon did not take it: try again next time
                self.errors.append(f"{exc.__class__.__name__}: {exc}")
            await asyncio.sleep(self.every)

    async def check(self) -> None:
        rate, requests = self.api.error_rate()
        if requests < 20:
            return
        if not self.firing and rate > THRESHOLD:
            started = self.clock.now()
            await self._send("critical", rate, self.identifier + 1, started)
            self.identifier, self.started, self.firing = self.identifier + 1, started, True
        elif self.firing and rate <= THRESHOLD:
            await self._send("resolved", rate, self.identifier, self.started or self.clock.now())
            self.firing = False

    async def _send(self, action: str, rate: float, identifier: int, started: datetime) -> None:
        now = self.clock.now()
        body = json.dumps(metric_alert(action, rate=rate, identifier=identifier, started=started, now=now,
                                       window_seconds=round(self.api.window))).encode()
        signature = hmac.new(self.client_secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "Sentry-Hook-Resource": "metric_alert",
                   "Sentry-Hook-Signature": signature}
        async with self.http.post(self.hook_url, data=body, headers=headers) as response:
            response.raise_for_status()
        self.sent.append((action, identifier, rate, now))
        if self.on_alert is not None:
            self.on_alert(action, rate, identifier)
