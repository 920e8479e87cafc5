"""The demo's API: the service responder looks after, with the production `/health` of the deployment docs.

It runs whatever Railway says is live: `version` comes from the Railway stand-in's active deployment of
`api` in production, so a `deploymentRollback` there puts the previous release back in place here (the
real closed loop: responder's railway provider -> the stand-in -> the app's behaviour).

- `GET /health` answers the runbook's JSON — status, timestamp, version, uptime and `checks` (database,
  redis, stripe, hostaway) — with 200 when healthy and 503 otherwise.
- `GET /api/bookings` is the traffic: it fails (500) for a share of requests that depends on the release
  (the bad `v2` breaks its Redis connection pool: 40%) and on the database (down: 60%, any release).
  Failures are spread evenly, so the error rate is exact, not random.
- `error_rate()` is the share of failed requests over the last `window` seconds: what Sentry measures.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from responder.demo.standins.railway import RailwayStandIn

__all__ = ["RELEASES", "DemoApi", "Release"]


@dataclass(frozen=True)
class Release:
    name: str  # v1, v2, v3
    version: str  # what /health reports
    redis_broken: bool = False  # the bad release's bug

    @property
    def meta(self) -> dict[str, Any]:
        return {"release": self.name, "version": self.version}


RELEASES = {r.name: r for r in (Release("v1", "1.2.3"), Release("v2", "1.3.0", redis_broken=True),
                                Release("v3", "1.3.1"))}
BASELINE_ERRORS = 0.005  # a healthy API still fails 1 request in 200
BAD_RELEASE_ERRORS = 0.40
DATABASE_DOWN_ERRORS = 0.60


class DemoApi:
    def __init__(self, railway: RailwayStandIn, *, window: float = 10.0,
                 on_health: Callable[[int, dict[str, Any]], None] | None = None) -> None:
        self.railway = railway
        self.window = window
        self.database_up = True
        self.on_health = on_health
        self.started = time.monotonic()
        self.outcomes: deque[tuple[float, bool]] = deque()  # (monotonic time, failed)
        self._debt = 0.0
        self._last_health: tuple[int, str] | None = None
        #: /health requests answered (the api-health probe's checks)
        self.health_checks = 0
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/api/bookings", self.bookings)
        self.app = app
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- state ---------------------------------------------------------------------------------------
    @property
    def release(self) -> Release:
        """The release Railway has live (v1 when nothing was deployed yet)."""
        active = self.railway.active("api")
        name = str(active.meta.get("release", "v1")) if active is not None else "v1"
        return RELEASES.get(name, RELEASES["v1"])

    def failure_share(self) -> float:
        if not self.database_up:
            return DATABASE_DOWN_ERRORS
        return BAD_RELEASE_ERRORS if self.release.redis_broken else BASELINE_ERRORS

    def checks(self) -> dict[str, str]:
        return {"database": "healthy" if self.database_up else "unhealthy",
                "redis": "unhealthy" if self.release.redis_broken else "healthy",
                "stripe": "healthy", "hostaway": "healthy"}

    def error_rate(self) -> tuple[float, int]:
        """(share of failed requests, number of requests) over the last `window` seconds."""
        cutoff = time.monotonic() - self.window
        while self.outcomes and self.outcomes[0][0] < cutoff:
            self.outcomes.popleft()
        total = len(self.outcomes)
        failed = sum(1 for _, bad in self.outcomes if bad)
        return (failed / total if total else 0.0), total

    def seed(self, requests_per_second: float) -> None:
        """Fill the window with the healthy traffic the API served before the demo started (a production API
        has been up for a while), so the error rate moves at the pace it would in production."""
        now = time.monotonic()
        count = int(self.window * requests_per_second)
        self.outcomes.extend((now - self.window + i / requests_per_second, False) for i in range(count))

    # -- HTTP ----------------------------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        checks = self.checks()
        healthy = checks["database"] == checks["redis"] == "healthy"
        body = {"status": "healthy" if healthy else "unhealthy",
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "version": self.release.version, "uptime": int(time.monotonic() - self.started), "checks": checks}
        status = 200 if healthy else 503
        self.health_checks += 1
        answer = (status, self.release.version + str(checks))
        if answer != self._last_health:
            self._last_health = answer
            if self.on_health is not None:
                self.on_health(status, body)
        return web.json_response(body, status=status)

    async def bookings(self, request: web.Request) -> web.Response:
        self._debt += self.failure_share()
        failed = self._debt >= 1.0
        if failed:
            self._debt -= 1.0
        self.outcomes.append((time.monotonic(), failed))
        if failed:
            reason = "database unavailable" if not self.database_up else "redis pool exhausted"
            return web.json_response({"error": reason}, status=500)
        return web.json_response({"bookings": [{"id": "bk_1042", "status": "confirmed"}]})

    # -- serving -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
