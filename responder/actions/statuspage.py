"""statuspage: configuration and action names (the calls are being written)."""

from __future__ import annotations

from pydantic import SecretStr

from responder.actions.base import VendorConfig
from responder.actions.pending import AnyParams, PendingProvider

__all__ = ["StatuspageConfig", "StatuspageProvider"]


class StatuspageConfig(VendorConfig):
    api_key: SecretStr | None = None
    page_id: str | None = None


class StatuspageProvider(PendingProvider):
    name = "statuspage"
    Config = StatuspageConfig
    actions = dict.fromkeys(("set", "incident",), AnyParams)
