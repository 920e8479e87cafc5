"""Reload probe files without a restart: `reload_probe_files(app)`, and SIGHUP wiring for `responder run`.

The whole configuration is loaded and validated again (off the event loop); only the probes are
swapped in. A configuration with problems changes nothing: the running probes stay and the problems
are logged. Rule, playbook and responder.yaml changes still need a restart.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from responder.config.loader import load_config
from responder.errors import ConfigError
from responder.keys import CONFIG, SERVICES
from responder.logs import get_logger

__all__ = ["reload_probe_files", "watch_sighup"]

log = get_logger(__name__)


async def reload_probe_files(app: web.Application) -> dict[str, list[str]] | None:
    """Re-read the configuration the app was started from and apply its probes; None when it has problems."""
    path = app[CONFIG].path
    try:
        fresh = await asyncio.to_thread(load_config, path, dict(os.environ))
    except ConfigError as exc:
        log.error("probe reload refused: the configuration has problems; the running probes stay",
                  problems=[str(p) for p in exc.problems])
        return None
    return app[SERVICES].probes.reload(fresh.probes, fresh.disabled_probes)


def watch_sighup(app: web.Application) -> None:
    """On SIGHUP, reload the probe files (for the daemon; tests call reload_probe_files directly)."""
    pending: set[asyncio.Task[object]] = set()

    async def sighup_ctx(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            log.info("SIGHUP: reloading probe files")
            task: asyncio.Task[object] = loop.create_task(reload_probe_files(app))
            pending.add(task)
            task.add_done_callback(pending.discard)

        loop.add_signal_handler(signal.SIGHUP, on_signal)
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
            for task in list(pending):
                task.cancel()

    app.cleanup_ctx.append(sighup_ctx)
