"""`chatops:` in responder.yaml — the Slack command, who may do what, and what rollback/restart mean per service.

    chatops:
      slack:
        command: /incident
        allow:
          read: [everyone]                         # help, list, status, silences (the default)
          write: [everyone]                        # ack, note (the default)
          destructive: [S0SRE0001, U0DANA001]      # rollback, restart, run, resolve, silence, unsilence,
                                                   # approve (default: nobody)
          rollback: {users: [U0DANA001], channels: [C0INC0001]}   # one subcommand: replaces its group's rule
        services:
          api:
            rollback: {action: railway.rollback, with: {service: api, environment: production},
                       argument: deployment_id}
            restart: {action: railway.restart, with: {service: api, environment: production}}

A rule lists Slack ids: users (U…/W…), user groups (S…, membership read with usergroups.users.list) and
channels (C…/G…: anyone typing the command in that channel); `everyone` allows all. A person is allowed
when any entry matches. The list form sorts the ids by their first letter; the mapping form names them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from responder.config.base import Duration, StrictModel

__all__ = [
    "DESTRUCTIVE",
    "GROUPS",
    "READ",
    "SUBCOMMANDS",
    "WRITE",
    "AllowRule",
    "ChatOpsConfig",
    "ServiceAction",
    "SlackChatOpsConfig",
]

#: subcommands (and the approve button) by group; a rule for the group covers its members
READ = ("help", "list", "status", "silences")
WRITE = ("ack", "note")
DESTRUCTIVE = ("rollback", "restart", "run", "resolve", "silence", "unsilence", "approve")
SUBCOMMANDS = READ + WRITE + DESTRUCTIVE
GROUPS = {"read": READ, "write": WRITE, "destructive": DESTRUCTIVE}

_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")
_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


class AllowRule(StrictModel):
    """Who may: Slack user ids, user group ids, channel ids, or everyone."""

    everyone: bool = False
    users: list[str] = Field(default_factory=list, description="Slack user ids (U… or W…)")
    groups: list[str] = Field(default_factory=list, description="Slack user group ids (S…)")
    channels: list[str] = Field(default_factory=list, description="channel ids (C… or G…): anyone in them")

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, raw: Any) -> Any:
        """`[everyone]` or `[U0DANA001, S0SRE0001, C0INC0001]`: ids sorted by their first letter."""
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list):
            return raw
        out: dict[str, Any] = {"users": [], "groups": [], "channels": []}
        for item in raw:
            text = str(item).strip()
            if text == "everyone":
                out["everyone"] = True
            elif _USER.match(text):
                out["users"].append(text)
            elif _GROUP.match(text):
                out["groups"].append(text)
            elif _CHANNEL.match(text):
                out["channels"].append(text)
            else:
                raise ValueError(f"{text!r} is not a Slack id: use `everyone`, a user id (U…), a user group id "
                                 "(S…) or a channel id (C…); names such as @alice or #ops are not accepted")
        return out

    @field_validator("users")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        return _check_ids(value, _USER, "a user id (U… or W…)")

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        return _check_ids(value, _GROUP, "a user group id (S…)")

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        return _check_ids(value, _CHANNEL, "a channel id (C… or G…)")

    def describe(self) -> str:
        if self.everyone:
            return "everyone"
        parts = [f"<@{u}>" for u in self.users] + [f"<!subteam^{g}>" for g in self.groups] \
            + [f"<#{c}>" for c in self.channels]
        return ", ".join(parts) or "nobody"


def _check_ids(value: list[str], pattern: re.Pattern[str], what: str) -> list[str]:
    for item in value:
        if not pattern.match(item):
            raise ValueError(f"{item!r} is not {what}")
    return value


class ServiceAction(StrictModel):
    """What `/incident rollback <service>` (or restart) runs: one action with fixed parameters."""

    action: str = Field(description="a provider action, e.g. railway.rollback, fly.restart, kubernetes.rollback")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="its parameters (no templates)")
    argument: str | None = Field(default=None, description="the parameter set by the command's optional last "
                                                           "word (`rollback api <deployment>`), e.g. deployment_id")
    timeout: Duration = Field(default=timedelta(minutes=2), description="per attempt of the action")
    retries: int = Field(default=0, ge=0, le=5, description="extra attempts after a retryable failure")

    @model_validator(mode="after")
    def _known(self) -> ServiceAction:
        from responder.actions import action_catalog  # here: the catalog imports every provider

        catalog = action_catalog()
        if self.action not in catalog:
            raise ValueError(f"unknown action {self.action!r} (known: {', '.join(sorted(catalog))})")
        params = catalog[self.action][2]
        if self.argument is not None and self.argument not in params.model_fields:
            raise ValueError(f"argument {self.argument!r} is not a parameter of {self.action} "
                             f"(parameters: {', '.join(params.model_fields)})")
        try:
            params.model_validate(self.with_)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"`with` does not fit {self.action}: {problems}") from None
        return self


class ServiceActions(StrictModel):
    rollback: ServiceAction | None = None
    restart: ServiceAction | None = None


class SlackChatOpsConfig(StrictModel):
    """The Slack slash command and buttons. Requests are verified with providers.slack.signing_secret."""

    command: str = Field(default="/incident", pattern=r"^/[a-z0-9_\-]{1,31}$",
                         description="the slash command as registered in the Slack app")
    allow: dict[str, AllowRule] = Field(
        default_factory=dict,
        description="who may run what: keys are `read`, `write`, `destructive` or a subcommand (which replaces "
                    "its group's rule). Defaults: read and write everyone, destructive nobody")
    services: dict[str, ServiceActions] = Field(default_factory=dict,
                                                description="what rollback and restart do, per service name")
    ack_within: Duration = Field(default=timedelta(milliseconds=1500),
                                 description="a command not done by then is acknowledged at once and reported "
                                             "through response_url when it is (Slack waits 3s; at most 2500ms)")
    confirm_ttl: Duration = Field(default=timedelta(minutes=15),
                                  description="how long a rollback/restart plan waits for Confirm")
    group_cache: Duration = Field(default=timedelta(minutes=5), description="how long user group members are "
                                                                            "cached (usergroups.users.list)")

    @field_validator("ack_within")
    @classmethod
    def _within_slack(cls, value: timedelta) -> timedelta:
        if value > timedelta(milliseconds=2500):
            raise ValueError("ack_within must leave Slack's 3s some room: at most 2500ms")
        return value

    @field_validator("allow")
    @classmethod
    def _allow_keys(cls, value: dict[str, AllowRule]) -> dict[str, AllowRule]:
        for key in value:
            if key not in GROUPS and key not in SUBCOMMANDS:
                known = ", ".join([*GROUPS, *SUBCOMMANDS])
                raise ValueError(f"unknown key {key!r} (known: {known})")
        return value

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: dict[str, ServiceActions]) -> dict[str, ServiceActions]:
        for name in value:
            if not _SERVICE.match(name):
                raise ValueError(f"service name {name!r}: use lowercase letters, digits, - and _")
        return value

    def rule(self, subcommand: str) -> AllowRule:
        """The rule for one subcommand: its own, else its group's, else the group's default."""
        if subcommand in self.allow:
            return self.allow[subcommand]
        group = next(g for g, members in GROUPS.items() if subcommand in members)
        if group in self.allow:
            return self.allow[group]
        return AllowRule(everyone=group != "destructive")


class ChatOpsConfig(StrictModel):
    slack: SlackChatOpsConfig = Field(default_factory=SlackChatOpsConfig)
