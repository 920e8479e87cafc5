"""fly: configuration and action names (the calls are being written)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from responder.actions.base import VendorConfig
from responder.actions.pending import AnyParams, PendingProvider

__all__ = ["FlyConfig", "FlyProvider"]


class FlyConfig(VendorConfig):
    token: SecretStr | None = Field(default=None, description="Fly.io API token (fly tokens create deploy)")


class FlyProvider(PendingProvider):
    name = "fly"
    Config = FlyConfig
    actions = dict.fromkeys(("restart", "rollback",), AnyParams)
