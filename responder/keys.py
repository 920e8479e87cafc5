"""Every typed aiohttp AppKey, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from responder.clock import Clock
from responder.config.loader import LoadedConfig
from responder.metrics import Metrics
from responder.store.redis import Redis

if TYPE_CHECKING:
    from responder.heartbeat import Heartbeat
    from responder.services import Services

__all__ = ["CLOCK", "CONFIG", "HEARTBEAT", "HTTP", "METRICS", "REDIS", "SERVICES"]

CONFIG = web.AppKey("config", LoadedConfig)
CLOCK = web.AppKey("clock", Clock)
METRICS = web.AppKey("metrics", Metrics)
REDIS = web.AppKey("redis", Redis)
HTTP = web.AppKey("http", aiohttp.ClientSession)
SERVICES: web.AppKey[Services] = web.AppKey("services")
#: the dead-man switch, when heartbeat.url is set
HEARTBEAT: web.AppKey[Heartbeat] = web.AppKey("heartbeat")
