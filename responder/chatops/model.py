"""Who clicked or typed what: the shapes the Slack routes hand to ChatOps."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Click", "CommandFailed", "CommandRequest", "SlackUser"]


class CommandFailed(Exception):
    """A command that cannot be done as asked: the message is shown to the person (and audited)."""


@dataclass(frozen=True)
class SlackUser:
    id: str
    name: str = ""

    @property
    def actor(self) -> str:
        """How the timeline names the person ("slack:U0DANA001", shown in Slack as a mention)."""
        return f"slack:{self.id}"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.actor})" if self.name else self.actor


@dataclass(frozen=True)
class CommandRequest:
    """A slash command, as Slack posts it (form fields)."""

    user: SlackUser
    channel_id: str
    command: str
    text: str
    response_url: str
    channel_name: str = ""
    team_id: str = ""


@dataclass(frozen=True)
class Click:
    """One button of a block_actions payload."""

    user: SlackUser
    action_id: str
    value: str
    response_url: str | None
    channel_id: str | None = None
    message_ts: str | None = None
