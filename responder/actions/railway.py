"""railway: configuration and action names (the calls are being written)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from responder.actions.base import VendorConfig
from responder.actions.pending import AnyParams, PendingProvider

__all__ = ["RailwayConfig", "RailwayProvider"]


class RailwayConfig(VendorConfig):
    token: SecretStr | None = Field(default=None, description="Railway API token (account or team token)")


class RailwayProvider(PendingProvider):
    name = "railway"
    Config = RailwayConfig
    actions = dict.fromkeys(("rollback", "restart", "redeploy",), AnyParams)
