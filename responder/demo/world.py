"""The demo's world: the daemon on the embedded store, the demo API, the vendor stand-ins, traffic and
Sentry, all on 127.0.0.1 in one event loop, wired the way production is.

    async with World(port=0, out=sys.stdout) as world:
        world.railway.deploy("api", meta=RELEASES["v2"].meta)   # the API starts failing
        ...

The providers are configured through responder.yaml and `${VAR}`s (demo/config.py) to talk to the
stand-ins, so the real provider code runs: slack-sdk against the Slack stand-in, the `pagerduty` client
over TLS (a throwaway CA written to a temp file, given as providers.pagerduty.ca_file), Railway's GraphQL
and Statuspage's REST API through VendorApi.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
import socket
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import aiohttp
from aiohttp import web

from responder.app import create_app
from responder.clock import SystemClock
from responder.config.loader import load_config
from responder.demo.config import Timing, write_config
from responder.demo.sentry import SentryMonitor
from responder.demo.standins.base import Recorded
from responder.demo.standins.pagerduty import PagerDutyStandIn
from responder.demo.standins.railway import RailwayStandIn
from responder.demo.standins.slack import SlackStandIn
from responder.demo.standins.statuspage import StatuspageStandIn
from responder.demo.story import Story
from responder.demo.target import RELEASES, DemoApi
from responder.incidents.model import Incident
from responder.keys import SERVICES
from responder.services import Services

__all__ = ["DemoClock", "World"]


class DemoClock(SystemClock):
    """Wall-clock time that can jump ahead (the game day's "35 minutes later"); sleeps stay real."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def jump(self, delta: timedelta) -> None:
        self.offset += delta


def listen(port: int) -> tuple[socket.socket, bool]:
    """A listening socket on 127.0.0.1:`port`; when that port is taken, on a free one (second value False)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        wanted = True
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or port == 0:
            sock.close()
            raise
        sock.bind(("127.0.0.1", 0))
        wanted = False
    sock.listen(128)
    sock.setblocking(False)
    return sock, wanted


class World:
    def __init__(self, *, port: int = 8080, out: TextIO | None = None, timing: Timing | None = None,
                 color: bool | None = None, traffic_per_second: float = 20.0, sentry_window: float = 10.0) -> None:
        self.wanted_port = port
        self.timing = timing or Timing()
        self.clock = DemoClock()
        self.story = Story(self.clock, out, color=color)
        self.traffic_interval = 1.0 / traffic_per_second
        self.secrets = {"SENTRY_CLIENT_SECRET": secrets.token_hex(16), "RAILWAY_TOKEN": secrets.token_hex(16),
                        "SLACK_BOT_TOKEN": f"xoxb-demo-{secrets.token_hex(12)}",
                        "PAGERDUTY_ROUTING_KEY": secrets.token_hex(16), "STATUSPAGE_API_KEY": secrets.token_hex(16)}
        self.railway = RailwayStandIn(token=self.secrets["RAILWAY_TOKEN"])
        self.slack = SlackStandIn(token=self.secrets["SLACK_BOT_TOKEN"])
        self.pagerduty = PagerDutyStandIn(routing_key=self.secrets["PAGERDUTY_ROUTING_KEY"])
        self.statuspage = StatuspageStandIn(api_key=self.secrets["STATUSPAGE_API_KEY"],
                                            components=["API", "Background workers", "Web app"])
        self.api = DemoApi(self.railway, window=sentry_window, on_health=self._on_health)
        self.port = 0
        self.port_note = ""
        self.config_dir: Path | None = None
        self.app: web.Application | None = None
        self._daemon: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.sentry: SentryMonitor | None = None
        self.traffic_errors = 0

    # -- lifecycle -------------------------------------------------------------------------------------
    async def __aenter__(self) -> World:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def stand_ins(self) -> list[Any]:
        return [self.railway, self.slack, self.pagerduty, self.statuspage]

    async def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="responder-demo-")
        root = Path(self._tmp.name)
        self._seed_railway()
        for stand_in in self.stand_ins:
            await stand_in.start()
        self.railway.listeners.append(self._on_railway)
        self.statuspage.listeners.append(self._on_statuspage)
        self.slack.listeners.append(self._on_slack)
        self.pagerduty.listeners.append(self._on_pagerduty)
        ca_file = root / "pagerduty-ca.pem"
        self.pagerduty.ca.cert_pem.write_to_path(str(ca_file))
        await self.api.start()
        self.api.seed(1.0 / self.traffic_interval)
        sock, wanted = listen(self.wanted_port)
        self.port = sock.getsockname()[1]
        if not wanted:
            self.port_note = f"port {self.wanted_port} is taken, so the daemon listens on {self.port}"
        env = {**self.secrets, "RAILWAY_PROJECT_ID": self.railway.project_id,
               "RAILWAY_URL": f"{self.railway.url}/graphql/v2", "SLACK_URL": self.slack.api_url,
               "PAGERDUTY_URL": self.pagerduty.url, "PAGERDUTY_CA_FILE": str(ca_file),
               "STATUSPAGE_PAGE_ID": self.statuspage.page_id, "STATUSPAGE_URL": self.statuspage.url,
               "API_HEALTH_URL": f"{self.api.url}/health"}
        self.config_dir = root / "config"
        loaded = load_config(write_config(self.config_dir, port=self.port, timing=self.timing), env=env)
        # env is exactly the demo's: no REDIS_URL (the embedded store), no SENTRY_DSN
        self.app = create_app(loaded, env=env, clock=self.clock)
        self._daemon = web.AppRunner(self.app, handle_signals=False, access_log=None)
        try:
            await self._daemon.setup()
            await web.SockSite(self._daemon, sock).start()
        except BaseException:
            sock.close()
            raise
        self.services.incidents.on_timeline.append(self.story.timeline)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.sentry = SentryMonitor(self.api, self._http, f"{self.url}/hooks/sentry",
                                    self.secrets["SENTRY_CLIENT_SECRET"], self.clock, on_alert=self._on_alert)
        self._tasks = [asyncio.create_task(self._traffic(), name="demo-traffic"),
                       asyncio.create_task(self.sentry.run(), name="demo-sentry")]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._daemon is not None:
            await self._daemon.cleanup()
            self._daemon = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        await self.api.close()
        for stand_in in self.stand_ins:
            await stand_in.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _seed_railway(self) -> None:
        """The project as production has it: api on v1 (after an older v0), and the sync worker."""
        self.railway.project_name = "tvl-production"
        self.railway._clock = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        self.railway.deploy("api", meta={"release": "v0", "version": "1.2.2"})
        self.railway.deploy("api", meta=RELEASES["v1"].meta)
        self.railway.deploy("sync-worker", meta={"release": "w1", "version": "1.2.3"})

    # -- the daemon --------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def services(self) -> Services:
        assert self.app is not None
        return self.app[SERVICES]

    def routes(self) -> set[str]:
        """The GET paths the daemon serves (the dashboard and postmortem pages are there when built in)."""
        assert self.app is not None
        return {info.get("path") or info.get("formatter") or "" for info in
                (resource.get_info() for resource in self.app.router.resources())}

    async def get_json(self, path: str) -> Any:
        assert self._http is not None
        async with self._http.get(f"{self.url}{path}") as response:
            response.raise_for_status()
            return await response.json()

    async def incidents(self) -> list[Incident]:
        return sorted(await self.services.incidents.store.list(), key=lambda i: int(i.id))

    async def idle(self) -> bool:
        """No playbook run in flight."""
        return not self.services.runner.tasks

    async def until(self, check: Callable[[], Awaitable[bool]], within: float, every: float = 0.05) -> bool:
        """Poll `check` until it holds (True) or `within` seconds pass (False)."""
        deadline = asyncio.get_running_loop().time() + within
        while not await check():
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(every)
        return True

    # -- traffic -----------------------------------------------------------------------------------------
    async def _traffic(self) -> None:
        """Users of the API: a steady stream of requests (their failures are what Sentry measures)."""
        assert self._http is not None
        while True:
            try:
                async with self._http.get(f"{self.api.url}/api/bookings") as response:
                    await response.read()
            except aiohttp.ClientError:
                self.traffic_errors += 1
            await asyncio.sleep(self.traffic_interval)

    # -- what the story shows ----------------------------------------------------------------------------
    def _on_health(self, status: int, body: dict[str, Any]) -> None:
        bad = [name for name, state in body["checks"].items() if state != "healthy"]
        detail = f" ({', '.join(f'{name} unhealthy' for name in bad)})" if bad else ""
        self.story.line("probe", f"api-health: GET /health -> {status} {body['status']}{detail}, version "
                                 f"{body['version']}", tag="probe")

    def _on_alert(self, action: str, rate: float, identifier: int) -> None:
        word = "above" if action == "critical" else "back under"
        self.story.line("sentry", f"error rate {rate:.1%} {word} 5%: metric alert {action} (#{identifier}) "
                                  "-> POST /hooks/sentry", tag="sentry")

    def _on_railway(self, received: Recorded, status: int) -> None:
        query = (received.json or {}).get("query", "") if isinstance(received.json, dict) else ""
        if "mutation" not in query:
            return
        name = query.split("{", 2)[1].split("(")[0].strip() if "{" in query else "mutation"
        release = self.api.release
        self.story.line("railway", f"received {name} (HTTP {status}): api now runs {release.name} "
                                   f"({release.version})", tag="railway")

    def _on_statuspage(self, received: Recorded, status: int) -> None:
        if received.method not in ("POST", "PATCH", "PUT") or not isinstance(received.json, dict):
            return
        fields = received.json.get("incident") or received.json.get("component") or {}
        what = "incident" if "incident" in received.json else "component"
        verb = "created" if received.method == "POST" else "updated"
        components = {self.statuspage.components.get(cid, {}).get("name", cid): state
                      for cid, state in (fields.get("components") or {}).items()}
        detail = ", ".join(f"{name} {state}" for name, state in components.items())
        state = fields.get("status", "")
        self.story.line("statuspage", f"public {what} {verb}: {state}" + (f" ({detail})" if detail else ""),
                        tag="statuspage")

    def _on_slack(self, received: Recorded, status: int) -> None:
        body = received.json if isinstance(received.json, dict) else received.query
        text = str(body.get("text") or "")
        if received.path.endswith("chat.postMessage"):
            if body.get("thread_ts") and text.startswith("*"):
                return  # the timeline, mirrored in the thread by SlackSync: the story shows it already
            where = "thread reply" if body.get("thread_ts") else "message posted to #incidents"
            self.story.line("slack", f"{where}: {text}", tag="slack")
        elif received.path.endswith("chat.update"):
            message = self.slack.messages.get((str(body.get("channel")), str(body.get("ts"))))
            edits = message.edits if message else 0
            self.story.line("slack", f"message {body.get('ts')} updated in place (edit {edits}): {text}", tag="slack")

    def _on_pagerduty(self, received: Recorded, status: int) -> None:
        body = received.json if isinstance(received.json, dict) else {}
        summary = (body.get("payload") or {}).get("summary", "")
        if received.path == "/v2/change/enqueue":
            self.story.line("pagerduty", f"change event: {summary}", tag="railway")
        else:
            action = body.get("event_action")
            text = f"{action} dedup_key={body.get('dedup_key')}" + (f": {summary}" if summary else "")
            self.story.line("pagerduty", text, tag="pagerduty" if action == "trigger" else "railway")
