"""pagerduty: configuration and action names (the calls are being written)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from responder.actions.base import VendorConfig
from responder.actions.pending import AnyParams, PendingProvider

__all__ = ["PagerDutyConfig", "PagerDutyProvider"]


class PagerDutyConfig(VendorConfig):
    routing_key: SecretStr | None = Field(default=None, description="Events API v2 integration key")
    api_key: SecretStr | None = Field(default=None, description="REST API key (optional)")


class PagerDutyProvider(PendingProvider):
    name = "pagerduty"
    Config = PagerDutyConfig
    actions = dict.fromkeys(("trigger", "acknowledge", "resolve", "change",), AnyParams)
