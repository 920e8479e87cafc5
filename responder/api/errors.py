"""Every error leaves as JSON `{"error": ..., "field": ...}` with a 4xx; never a traceback."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web

from responder.config.loader import secret_values
from responder.errors import IngestError, PayloadError, StoreUnavailable
from responder.keys import CONFIG
from responder.logs import get_logger, redact_text
from responder.observability import report_exception
from responder.store.redis import RedisError

__all__ = ["SECURITY_HEADERS", "error_body", "error_middleware", "json_error", "security_headers"]

log = get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(message: str, field: str | None = None) -> dict[str, str | None]:
    return {"error": message, "field": field}


def json_error(status: int, message: str, field: str | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(message, field), status=status, headers=headers)


def _redact(request: web.Request, text: str) -> str:
    loaded = request.app.get(CONFIG)
    return redact_text(text, secret_values(loaded.config)) if loaded is not None else text


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity") and request.body_exists:  # no sender compresses; no zip bombs either
        return json_error(415, f"Content-Encoding {encoding[:40]!r} is not accepted: send the body uncompressed",
                          "Content-Encoding")
    try:
        return await handler(request)
    except IngestError as exc:  # messages may quote what was sent, e.g. a token pasted into the wrong place
        return json_error(exc.status, _redact(request, exc.message), exc.field and _redact(request, exc.field),
                          headers=exc.headers or None)
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, f"request body is larger than {request.client_max_size} bytes", "body")
    except web.RequestPayloadError:  # the body's framing broke off (e.g. a malformed chunked encoding)
        response = json_error(400, "request body could not be read", "body")
        response.force_close()  # the rest of the body is unread: the connection cannot carry another request
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason, None, headers={k: v for k, v in exc.headers.items()
                                                                 if k in ("Allow", "Retry-After")})
    except (StoreUnavailable, RedisError, ConnectionError) as exc:
        log.error("store unavailable", path=request.path, error=exc.__class__.__name__)
        return json_error(503, "state store unavailable, try again", None, headers={"Retry-After": "5"})
    except Exception as exc:
        report_exception(exc, path=request.path)
        return json_error(500, "internal error", None)


#: what a response gets unless its handler set its own (the dashboard and the status page set their own CSP)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def _secure(request: web.Request, headers: MutableMapping[str, str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if request.path.startswith("/api/"):  # incidents, timelines, audit: never kept by a browser or a proxy
        headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects the error middleware lets through
        _secure(request, exc.headers)
        raise
    _secure(request, response.headers)
    return response


async def read_json_object(request: web.Request, *, required: bool = False) -> dict[str, Any]:
    """The request's JSON object body; an empty body is `{}` unless `required`. Anything else is a 400 naming it."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise PayloadError("a JSON object is required", field="body")
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise PayloadError("body is not valid JSON", field="body") from None
    except RecursionError:
        raise PayloadError("body is nested too deeply", field="body") from None
    if not isinstance(body, dict):
        raise PayloadError("body must be a JSON object", field="body")
    return body
