"""ChatOps: Slack slash commands and buttons acting on incidents, with authorization and an audit trail.

    reply = await chatops.handle_command(request)   # the HTTP answer, within chatops.slack.ack_within
    chatops.handle_click(click)                     # a button: acted on in a tracked background task
    await chatops.close()                           # app cleanup: drains, then cancels, what is in flight

A command runs in a background task from the start. When it is done within `ack_within` (default 1.5s;
Slack waits 3s) its answer is the HTTP response; otherwise the person gets an ephemeral "working on it" at
once and the answer is posted to the command's `response_url` (slack-sdk AsyncWebhookClient on the app's
shared session) when it is ready. A command that starts something longer (a playbook run) answers at once
and posts the outcome to the response_url later.

Every command and click, allowed or refused, goes to the audit log (Redis, `GET /api/v1/audit`) with the
Slack user id and name; actors are "slack:<user id>". A refusal that names an incident is also written to
that incident's timeline, and so is every change (ack, resolve, note, rollback) through IncidentService.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackClientError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from responder.actions.base import ActionProvider
from responder.actions.slack import SlackProvider
from responder.actions.slack_message import escape
from responder.chatops.approvals import Approvals
from responder.chatops.authz import Authorizer
from responder.chatops.changes import Changes
from responder.chatops.commands import Command, Usage, help_text, parse
from responder.chatops.config import SlackChatOpsConfig
from responder.chatops.interactions import handle_click
from responder.chatops.messages import Reply, incident_detail, incident_line
from responder.chatops.model import Click, CommandFailed, CommandRequest, SlackUser
from responder.chatops.remediation import Remediations, service_playbooks
from responder.clock import Clock
from responder.config.loader import LoadedConfig, secret_values
from responder.events import Event, EventStatus, Severity, fingerprint
from responder.incidents.model import IncidentState
from responder.incidents.service import IncidentNotFound, IncidentService
from responder.incidents.transitions import IllegalTransition
from responder.logs import get_logger
from responder.observability import report_exception
from responder.playbooks.model import Playbook
from responder.playbooks.runner import PlaybookRunner
from responder.store.approvals import ApprovalStore
from responder.store.audit import AuditLog
from responder.store.keys import Keys
from responder.store.redis import Redis
from responder.store.runs import RunStore
from responder.store.status import StatusStore

__all__ = ["ChatOps", "build_chatops"]

log = get_logger(__name__)

#: slack-sdk logs request bodies at DEBUG: a quiet logger of its own
_SDK_LOG = logging.getLogger("responder.chatops.sdk")
_SDK_LOG.setLevel(logging.WARNING)

#: subcommands whose first argument is an incident id
INCIDENT_ARG = ("status", "ack", "resolve", "note")
#: a response_url takes at most 5 messages within 30 minutes of the command
RESPONSE_WINDOW = 29 * 60


class ChatOps:
    def __init__(self, config: SlackChatOpsConfig, *, incidents: IncidentService, runner: PlaybookRunner,
                 runs: RunStore, status: StatusStore, approvals: Approvals, confirmations: ApprovalStore,
                 audit: AuditLog, authz: Authorizer, remediations: Remediations, playbooks: dict[str, Playbook],
                 http: aiohttp.ClientSession, clock: Clock, slack: SlackProvider | None = None,
                 silences: Any = None) -> None:
        self.config = config
        self.incidents = incidents
        self.runner = runner
        self.runs = runs
        self.status = status
        self.approvals = approvals
        self.confirmations = confirmations
        self.audit = audit
        self.authz = authz
        self.remediations = remediations
        #: the configured playbooks (`/incident run` offers these, not the chatops.* ones)
        self.playbooks = playbooks
        self.http = http
        self.clock = clock
        self.slack = slack
        #: the SilenceService, when silences are available
        self.silences = silences
        self.tasks: set[asyncio.Task[Any]] = set()
        self.watchers: set[asyncio.Task[Any]] = set()
        self.changes = Changes(self)

    # -- tasks -------------------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], name: str, *, watcher: bool = False) -> asyncio.Task[Any]:
        """Run `coro` in a tracked task. A `watcher` only waits to report a run's outcome: shutdown cancels
        it at once, while other tasks (a command, a click) get a moment to finish."""
        task = asyncio.create_task(coro, name=name)
        tracked = self.watchers if watcher else self.tasks
        tracked.add(task)
        task.add_done_callback(tracked.discard)
        return task

    async def drain(self) -> None:
        """Wait for everything in flight, watchers too (tests)."""
        while self.tasks or self.watchers:
            await asyncio.gather(*self.tasks, *self.watchers, return_exceptions=True)

    async def close(self, drain_seconds: float = 5.0) -> None:
        """App cleanup (before the runner's tasks stop): cancel the watchers, give commands and clicks in
        flight `drain_seconds`, then cancel what is left."""
        for task in list(self.watchers):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=drain_seconds)
        for task in [*self.tasks, *self.watchers]:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.watchers, return_exceptions=True)

    # -- answering ---------------------------------------------------------------------------------
    async def respond(self, url: str | None, reply: Reply) -> bool:
        """Post `reply` to a response_url; failures are logged (without the URL's secret path)."""
        if not url:
            return False
        client = AsyncWebhookClient(url=url, session=self.http, logger=_SDK_LOG)
        try:
            async with asyncio.timeout(10):
                response = await client.send_dict(reply.as_json())
        except (TimeoutError, aiohttp.ClientError, SlackClientError) as exc:
            log.warning("response_url post failed", host=urlsplit(url).hostname, error=exc.__class__.__name__)
            return False
        if response.status_code != 200:
            log.warning("response_url refused the message", host=urlsplit(url).hostname, status=response.status_code,
                        body=str(response.body)[:200])
            return False
        return True

    def follow_up(self, url: str | None, reply: Reply) -> None:
        make: Callable[[], Awaitable[Reply | None]] | None = reply.follow_up
        if make is None:
            return

        async def later() -> None:
            try:
                async with asyncio.timeout(RESPONSE_WINDOW):
                    result = await make()
            except TimeoutError:
                log.warning("follow-up not sent: the response_url has expired")
                return
            if result is not None:
                await self.respond(url, result)

        self.spawn(later(), "slack-follow-up", watcher=True)

    async def _deliver(self, url: str, job: asyncio.Task[Reply]) -> None:
        reply = await job
        await self.respond(url, reply)
        self.follow_up(url, reply)

    # -- auditing ----------------------------------------------------------------------------------
    async def record(self, user: SlackUser, *, via: str, what: str, allowed: bool | None, outcome: str,
                     detail: str = "", channel_id: str | None = None, incident_id: str | None = None) -> None:
        entry = {"at": self.clock.now().isoformat(), "actor": user.actor, "user_id": user.id, "user_name": user.name,
                 "via": via, "command": what, "channel_id": channel_id, "allowed": allowed, "outcome": outcome,
                 "detail": detail[:500], "incident_id": incident_id}
        try:
            await self.audit.record(entry)
        except Exception as exc:  # the audit must not turn an answer into a crash; it is reported
            report_exception(exc)
        log.info("chatops", **{k: v for k, v in entry.items() if k != "at"})

    async def refused(self, user: SlackUser, *, via: str, what: str, reason: str, channel_id: str | None,
                      incident_id: str | None) -> Reply:
        """Audit a refusal (and put it on the incident's timeline); the answer to show."""
        await self.record(user, via=via, what=what, allowed=False, outcome="refused", detail=reason,
                          channel_id=channel_id, incident_id=incident_id)
        if incident_id:
            with contextlib.suppress(IncidentNotFound):
                await self.incidents.note(incident_id, user.actor, f"refused: {what} ({reason})", kind="chatops")
        return Reply(f":no_entry: {reason}")

    # -- buttons -----------------------------------------------------------------------------------
    def handle_click(self, click: Click) -> asyncio.Task[Any]:
        """Act on a button click in the background (Slack already has its 200)."""
        return self.spawn(handle_click(self, click), f"slack-click:{click.action_id[:40]}")

    # -- slash commands ----------------------------------------------------------------------------
    async def handle_command(self, request: CommandRequest) -> Reply:
        """The immediate answer to a slash command (see the module docstring)."""
        parsed = parse(request.text, self.config.command)
        if isinstance(parsed, Usage):
            await self.record(request.user, via="command", what=f"{request.command} {request.text}".strip(),
                              allowed=None, outcome="usage", channel_id=request.channel_id)
            return Reply(parsed.text)
        job: asyncio.Task[Reply] = self.spawn(self._command(request, parsed), f"slack-command:{parsed.name}")
        await asyncio.wait({job}, timeout=self.config.ack_within.total_seconds())
        if job.done():
            reply = job.result()
            self.follow_up(request.response_url, reply)
            return reply
        self.spawn(self._deliver(request.response_url, job), "slack-response")
        return Reply(f":hourglass_flowing_sand: Working on `{request.command} {escape(parsed.text)}`…")

    async def _command(self, request: CommandRequest, command: Command) -> Reply:
        what = f"{request.command} {command.text}".strip()
        incident_id = command.arg(0) if command.name in INCIDENT_ARG else None
        user = request.user
        try:
            verdict = await self.authz.check(command.name, user.id, request.channel_id)
            if not verdict.allowed:
                return await self.refused(user, via="command", what=what, reason=verdict.reason,
                                          channel_id=request.channel_id, incident_id=incident_id)
            handler: Callable[[CommandRequest, Command], Awaitable[Reply]] = getattr(self, f"_cmd_{command.name}")
            try:
                reply = await handler(request, command)
            except CommandFailed as exc:
                await self.record(user, via="command", what=what, allowed=True, outcome="failed", detail=str(exc),
                                  channel_id=request.channel_id, incident_id=incident_id)
                return Reply(f":warning: {exc}")
            await self.record(user, via="command", what=what, allowed=True, outcome="ok",
                              channel_id=request.channel_id, incident_id=incident_id)
            return reply
        except Exception as exc:
            report_exception(exc, command=command.name)
            await self.record(user, via="command", what=what, allowed=None, outcome="error",
                              detail=exc.__class__.__name__, channel_id=request.channel_id, incident_id=incident_id)
            return Reply(":warning: Something went wrong on responder's side; it was logged. Try again, or use "
                         "the dashboard.")

    async def _incident(self, incident_id: str) -> Any:
        try:
            return await self.incidents.get(incident_id)
        except IncidentNotFound:
            raise CommandFailed(f"There is no incident #{escape(incident_id)}.") from None

    async def _cmd_help(self, request: CommandRequest, command: Command) -> Reply:
        return Reply(help_text(self.config.command))

    async def _cmd_list(self, request: CommandRequest, command: Command) -> Reply:
        found = []
        for state in (IncidentState.TRIGGERED, IncidentState.ACKNOWLEDGED, IncidentState.MITIGATING):
            found += await self.incidents.store.list(state, 50)
        if not found:
            return Reply(":white_check_mark: No open incidents.")
        found.sort(key=lambda i: i.created_at, reverse=True)
        lines = [incident_line(i) for i in found[:25]]
        more = f"\n…and {len(found) - 25} more" if len(found) > 25 else ""
        text = f"*{len(found)} open incident{'s' if len(found) != 1 else ''}*\n" + "\n".join(lines) + more
        return Reply(text, [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}])

    async def _cmd_status(self, request: CommandRequest, command: Command) -> Reply:
        if command.args:
            incident = await self._incident(command.args[0])
            timeline = await self.incidents.store.timeline(incident.id)
            return Reply(f"#{incident.id} {escape(incident.title)}: {incident.state.value}",
                         incident_detail(incident, timeline))
        counts = await self.incidents.store.counts()
        open_count = sum(n for state, n in counts.items() if state != IncidentState.RESOLVED.value)
        parts = [f"*{open_count} open incident{'s' if open_count != 1 else ''}*"
                 + (f" ({', '.join(f'{n} {s}' for s, n in counts.items() if n and s != 'resolved')})"
                    if open_count else "")]
        components = await self.status.components()
        for component, state in sorted(components.items()):
            parts.append(f"• {escape(component)}: {escape(str(state.get('status', 'unknown')))}")
        return Reply("\n".join(parts))

    async def _cmd_ack(self, request: CommandRequest, command: Command) -> Reply:
        incident = await self._incident(command.args[0])
        try:
            incident = await self.incidents.acknowledge(incident.id, request.user.actor)
        except IllegalTransition as exc:
            raise CommandFailed(f"#{incident.id}: {exc}") from None
        return Reply(f":eyes: Acknowledged #{incident.id} {escape(incident.title)}.")

    async def _cmd_resolve(self, request: CommandRequest, command: Command) -> Reply:
        incident = await self._incident(command.args[0])
        incident = await self.incidents.resolve(incident.id, request.user.actor, command.arg(1) or "")
        return Reply(f":white_check_mark: Resolved #{incident.id} {escape(incident.title)}.")

    async def _cmd_note(self, request: CommandRequest, command: Command) -> Reply:
        incident = await self._incident(command.args[0])
        await self.incidents.note(incident.id, request.user.actor, command.args[1], kind="human")
        return Reply(f":memo: Note added to #{incident.id}.")

    async def _cmd_rollback(self, request: CommandRequest, command: Command) -> Reply:
        return await self.changes.propose("rollback", command.args[0], command.arg(1), request.user,
                                          request.channel_id, None)

    async def _cmd_restart(self, request: CommandRequest, command: Command) -> Reply:
        return await self.changes.propose("restart", command.args[0], command.arg(1), request.user,
                                          request.channel_id, None)

    async def _cmd_run(self, request: CommandRequest, command: Command) -> Reply:
        playbook_id, service = command.args[0], command.arg(1)
        if playbook_id not in self.playbooks:
            known = ", ".join(f"`{p}`" for p in sorted(self.playbooks)) or "none"
            raise CommandFailed(f"There is no playbook `{escape(playbook_id)}` (known: {known}).")
        user = request.user
        event = self.event(f"run {playbook_id}", service, str(uuid.uuid4()), user)
        title = f"manual run of {playbook_id}" + (f" for {service}" if service else "") + f" by {user.name or user.id}"
        incident, _ = await self.incidents.open(
            key=f"chatops:run:{uuid.uuid4().hex}", rule_id="chatops", title=title, severity=Severity.WARNING,
            group={"service": service} if service else {}, playbook=playbook_id, event=event,
            text=f"playbook {playbook_id} started from Slack by {user.label}")
        run_id = await self.runner.start(incident, playbook_id, event, phase="manual", actor=user.actor)
        if run_id is None:
            raise CommandFailed(f"Playbook `{escape(playbook_id)}` was not started.")
        reply = Reply(f":arrow_forward: Started playbook `{escape(playbook_id)}` as incident #{incident.id} "
                      f"(run `{run_id}`); the outcome follows here.", response_type="in_channel")
        reply.follow_up = lambda: self.changes.outcome(run_id, playbook_id, incident.id)
        return reply

    def event(self, name: str, service: str | None, delivery: str, user: SlackUser,
              labels: dict[str, str] | None = None) -> Event:
        """The event a manual run starts from (its labels carry the command's argument)."""
        now = self.clock.now()
        labels = {**(labels or {}), "slack_user": user.id}
        return Event(source="slack", name=name, service=service, status=EventStatus.INFO, severity=Severity.WARNING,
                     summary=f"{name} from Slack by {user.label}", labels=labels,
                     fingerprint=fingerprint("slack", name, labels), occurred_at=now, received_at=now,
                     delivery_id=f"slack:{delivery}")

    # -- silences (SilenceService, when available) -------------------------------------------------
    async def _cmd_silence(self, request: CommandRequest, command: Command) -> Reply:
        silences, module = self._silences()
        try:
            match, duration, reason = module.parse_silence_command(command.args[0])
            silence = await silences.silence_for(match, duration, reason, request.user.actor)
        except module.SilenceError as exc:
            raise CommandFailed(f"{exc.message}. Usage: `{self.config.command} silence <matchers> <duration> "
                                "[reason]`, e.g. `service=api 2h deploy`") from None
        return Reply(f":mute: Silenced: `{escape(silence.describe(self.clock.now()))}`", response_type="in_channel")

    async def _cmd_silences(self, request: CommandRequest, command: Command) -> Reply:
        silences, _ = self._silences()
        found = await silences.list_silences()
        if not found:
            return Reply("No active or scheduled silences.")
        now = self.clock.now()
        return Reply("*Silences*\n" + "\n".join(f"• `{escape(s.describe(now))}`" for s in found[:30]))

    async def _cmd_unsilence(self, request: CommandRequest, command: Command) -> Reply:
        silences, module = self._silences()
        try:
            silence = await silences.expire(command.args[0], request.user.actor)
        except module.SilenceNotFound:
            raise CommandFailed(f"There is no silence `{escape(command.args[0])}`.") from None
        except module.SilenceError as exc:
            raise CommandFailed(exc.message) from None
        return Reply(f":loud_sound: Silence `{escape(silence.id)}` ended.", response_type="in_channel")

    def _silences(self) -> tuple[Any, Any]:
        try:
            module: Any = importlib.import_module("responder.engine.silences")
        except ImportError:
            module = None
        if self.silences is None or module is None:
            raise CommandFailed("Silences are not available yet in this responder.")
        return self.silences, module


def build_chatops(loaded: LoadedConfig, *, redis: Redis, keys: Keys, http: aiohttp.ClientSession, clock: Clock,
                  incidents: IncidentService, runner: PlaybookRunner, runs: RunStore, status: StatusStore,
                  providers: dict[str, ActionProvider], planners: dict[str, ActionProvider],
                  silences: Any = None) -> ChatOps:
    """ChatOps for the app; also makes the runner able to run approval steps and the chatops.* playbooks."""
    cfg = loaded.config
    config = cfg.chatops.slack
    ready = providers.get("slack")
    slack = ready if isinstance(ready, SlackProvider) else None
    store = ApprovalStore(redis, keys)
    approvals = Approvals(store, slack, incidents, clock)
    remediations = Remediations(config, providers, planners, cfg.automation, runs, clock, secret_values(cfg))
    runner.approvals = approvals
    runner.playbooks = {**service_playbooks(config), **runner.playbooks}
    return ChatOps(config, incidents=incidents, runner=runner, runs=runs, status=status, approvals=approvals,
                   confirmations=store, audit=AuditLog(redis, keys), authz=Authorizer(config, slack, clock),
                   remediations=remediations, playbooks=loaded.playbooks, http=http, clock=clock, slack=slack,
                   silences=silences)
