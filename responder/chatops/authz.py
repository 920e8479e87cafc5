"""Authorizer: may this Slack user run this subcommand here? Rules from chatops.slack.allow.

User group membership is read with `usergroups.users.list` (the bot needs the usergroups:read scope) through
the Slack provider's client and cached per group for `group_cache` on the app's clock; concurrent checks of
one group share one call. When the members cannot be read, the group grants nothing (fail closed) and the
refusal says why.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from responder.actions.slack import SlackProvider
from responder.chatops.config import AllowRule, SlackChatOpsConfig
from responder.clock import Clock
from responder.errors import ActionError
from responder.logs import get_logger

__all__ = ["Authorizer", "Verdict"]

log = get_logger(__name__)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    #: why not (shown to the person), or which entry allowed it
    reason: str


class Authorizer:
    def __init__(self, config: SlackChatOpsConfig, slack: SlackProvider | None, clock: Clock) -> None:
        self.config = config
        self.slack = slack
        self.clock = clock
        self._members: dict[str, tuple[datetime, frozenset[str]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def check(self, subcommand: str, user_id: str, channel_id: str | None) -> Verdict:
        """The configured rule for `subcommand` (its own, its group's, or the default)."""
        verdict = await self.check_rule(self.config.rule(subcommand), user_id, channel_id)
        if verdict.allowed:
            return verdict
        return Verdict(False, f"you are not allowed to `{subcommand}`: it is limited to {verdict.reason}")

    async def check_rule(self, rule: AllowRule, user_id: str, channel_id: str | None) -> Verdict:
        """Allowed when any entry of `rule` matches; the refusal's reason describes the rule."""
        if rule.everyone:
            return Verdict(True, "everyone")
        if user_id in rule.users:
            return Verdict(True, f"user {user_id}")
        if channel_id and channel_id in rule.channels:
            return Verdict(True, f"channel {channel_id}")
        problems = []
        for group in rule.groups:
            try:
                if user_id in await self.members(group):
                    return Verdict(True, f"user group {group}")
            except ActionError as exc:
                problems.append(f"the members of user group {group} could not be read ({exc})")
        reason = rule.describe()
        if problems:
            reason += "; " + "; ".join(problems)
        return Verdict(False, reason)

    async def members(self, group: str) -> frozenset[str]:
        """The user ids in a user group (cached); ActionError when Slack cannot tell."""
        cached = self._members.get(group)
        if cached and (self.clock.now() - cached[0]) < self.config.group_cache:
            return cached[1]
        lock = self._locks.setdefault(group, asyncio.Lock())
        async with lock:
            cached = self._members.get(group)
            if cached and (self.clock.now() - cached[0]) < self.config.group_cache:
                return cached[1]
            if self.slack is None:
                raise ActionError("providers.slack.bot_token is not set")
            data = await self.slack._send("usergroups.users.list",
                                          self.slack.client.usergroups_users_list(usergroup=group))
            users = frozenset(str(u) for u in data.get("users") or [])
            self._members[group] = (self.clock.now(), users)
            log.info("user group members read", group=group, members=len(users))
            return users
