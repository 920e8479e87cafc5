"""Sentry error reporting: one event per reported exception, with every secret scrubbed before it leaves.

Logs reach Sentry only as breadcrumbs (`LoggingIntegration(event_level=None)`): an error is reported once,
through `report_exception` or an integration (aiohttp handler, crashed asyncio task), never again
because it was also logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import sentry_sdk
from sentry_sdk.integrations.aiohttp import AioHttpIntegration
from sentry_sdk.integrations.asyncio import AsyncioIntegration, enable_asyncio_integration
from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger
from sentry_sdk.transport import Transport

from responder.logs import get_logger, redact_value

if TYPE_CHECKING:
    from sentry_sdk.types import Event, Hint

__all__ = ["init_sentry", "report_exception", "shutdown_sentry"]

_log = get_logger(__name__)

# Request headers never sent to Sentry, not even as "[Filtered]": credentials and webhook signatures.
_DROPPED_HEADER = re.compile(
    r"(proxy-)?authorization|cookie|set-cookie|sentry-hook-signature|x-slack-signature"
    r"|x-pagerduty-signature|x-grafana(-[a-z0-9]+)*-signature",
    re.IGNORECASE,
)
# Top-level event keys whose names are not user data (installed package names such as "secretstorage").
_NO_KEY_MASKING = ("modules", "sdk")


def init_sentry(
    dsn: str,
    *,
    environment: str | None = None,
    release: str | None = None,
    secrets: Callable[[], Iterable[str]] | None = None,
    transport: Transport | type[Transport] | None = None,
) -> bool:
    """Start reporting to Sentry; returns False (and does nothing) when `dsn` is empty and no transport is given.

    Must be called inside the running event loop (for example from an aiohttp cleanup context):
    AsyncioIntegration patches the loop that is running at init time, and does nothing otherwise.
    `secrets` returns the secret values of the moment; `before_send` replaces them by `***`.
    """
    asyncio.get_running_loop()  # RuntimeError outside a loop, rather than silently losing task crashes
    if not dsn and transport is None:
        return False
    shutdown_sentry()  # a second init would otherwise leak the first client's worker thread
    sentry_sdk.init(
        dsn=dsn,  # "" rather than None: None would make the sdk read SENTRY_DSN from the environment
        environment=environment,
        release=release,
        transport=transport,
        integrations=[
            AioHttpIntegration(transaction_style="method_and_path_pattern"),
            AsyncioIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=None),
        ],
        # No send_default_pii=False: unset it means the same, and since 2.75 passing it raises a
        # DeprecationWarning (its successor `data_collection` would switch off the default EventScrubber).
        traces_sample_rate=0,
        before_send=_scrubber(secrets),
    )
    # Integrations run setup_once once per process, so AsyncioIntegration only patched the loop that was
    # running at the first init. This patches the current loop too (no-op if done): tests get a loop each.
    enable_asyncio_integration()
    # Otherwise "Task exception was never retrieved" repeats, as a breadcrumb, what AsyncioIntegration reported.
    ignore_logger("asyncio")
    return True


def _scrubber(secrets: Callable[[], Iterable[str]] | None) -> Callable[[Event, Hint], Event | None]:
    def before_send(event: Event, hint: Hint) -> Event | None:
        values = list(secrets()) if secrets is not None else []
        raw: dict[str, Any] = dict(event)
        _drop_headers(raw.get("request"))
        kept = {k: raw.pop(k) for k in _NO_KEY_MASKING if k in raw}
        scrubbed: dict[str, Any] = redact_value(raw, values)
        scrubbed.update(redact_value(kept, values, mask_keys=False))
        return cast("Event", scrubbed)

    return before_send


def _drop_headers(request: Any) -> None:
    headers = request.get("headers") if isinstance(request, dict) else None
    if isinstance(headers, dict):
        for name in [n for n in headers if isinstance(n, str) and _DROPPED_HEADER.fullmatch(n)]:
            del headers[name]


def _client_ready() -> bool:
    # After close() or init(dsn=None) the client still says is_active(); only a transport can send.
    client = sentry_sdk.get_client()
    return client.is_active() and client.transport is not None


def report_exception(
    exc: BaseException,
    *,
    incident_id: str | None = None,
    event_id: str | None = None,
    **tags: str,
) -> None:
    """Log `exc` at error level and send it to Sentry once, tagged with the ids (Sentry part skipped if off).

    Tags go on a forked scope, so they do not stick to later events of the same task or request.
    """
    all_tags = {"incident_id": incident_id, "event_id": event_id, **tags}
    set_tags = {k: v for k, v in all_tags.items() if v is not None}
    sentry_event_id = None
    if _client_ready():
        with sentry_sdk.new_scope() as scope:
            for key, value in set_tags.items():
                scope.set_tag(key, value)
            sentry_event_id = scope.capture_exception(exc)
    # A breadcrumb only: LoggingIntegration has event_level=None, so this is not a second Sentry event.
    _log.error("exception reported", exc_info=exc, sentry_event_id=sentry_event_id, **set_tags)


def shutdown_sentry(timeout: float = 2.0) -> None:
    """Deliver queued events (waiting up to `timeout` seconds), close the client and stop reporting.

    This blocks the calling thread while the transport's worker thread sends; safe when Sentry is off.
    """
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=timeout)
    sentry_sdk.get_global_scope().set_client(None)
