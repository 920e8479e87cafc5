"""vercel: configuration and action names (the calls are being written)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from responder.actions.base import VendorConfig
from responder.actions.pending import AnyParams, PendingProvider

__all__ = ["VercelConfig", "VercelProvider"]


class VercelConfig(VendorConfig):
    token: SecretStr | None = Field(default=None, description="Vercel access token")
    team_id: str | None = Field(default=None, description="teamId query parameter for team-owned projects")


class VercelProvider(PendingProvider):
    name = "vercel"
    Config = VercelConfig
    actions = dict.fromkeys(("rollback", "promote",), AnyParams)
