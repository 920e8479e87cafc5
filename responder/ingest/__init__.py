"""Webhook ingest: one adapter per vendor, listed explicitly in ADAPTERS (no discovery by name)."""

from __future__ import annotations

from responder.ingest.alertmanager import AlertmanagerAdapter, AlertmanagerConfig
from responder.ingest.base import IngestAdapter, IngestRequest
from responder.ingest.grafana import GrafanaAdapter, GrafanaConfig
from responder.ingest.pagerduty import PagerDutyAdapter, PagerDutyWebhookConfig
from responder.ingest.sentry import SentryAdapter, SentryConfig
from responder.ingest.uptimerobot import UptimeRobotAdapter, UptimeRobotConfig

__all__ = [
    "ADAPTERS",
    "AlertmanagerAdapter",
    "AlertmanagerConfig",
    "GrafanaAdapter",
    "GrafanaConfig",
    "IngestAdapter",
    "IngestRequest",
    "PagerDutyAdapter",
    "PagerDutyWebhookConfig",
    "SentryAdapter",
    "SentryConfig",
    "UptimeRobotAdapter",
    "UptimeRobotConfig",
    "adapter_by_source",
]

ADAPTERS: tuple[type[IngestAdapter], ...] = (SentryAdapter, GrafanaAdapter, AlertmanagerAdapter, UptimeRobotAdapter,
                                             PagerDutyAdapter)


def adapter_by_source() -> dict[str, type[IngestAdapter]]:
    """`source` (the URL segment and the `ingest.<source>` config key) -> adapter class."""
    return {adapter.source: adapter for adapter in ADAPTERS}
