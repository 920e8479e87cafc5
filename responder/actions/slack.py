"""slack: configuration and action names (the calls are being written)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from responder.actions.base import VendorConfig
from responder.actions.pending import AnyParams, PendingProvider

__all__ = ["SlackConfig", "SlackProvider"]


class SlackConfig(VendorConfig):
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    channel: str | None = Field(default=None, description="default channel for slack.post")


class SlackProvider(PendingProvider):
    name = "slack"
    Config = SlackConfig
    actions = dict.fromkeys(("post", "update",), AnyParams)
