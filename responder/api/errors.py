"""Every error leaves as JSON `{"error": ..., "field": ...}` with a 4xx; never a traceback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from responder.errors import IngestError, StoreUnavailable
from responder.logs import get_logger
from responder.observability import report_exception
from responder.store.redis import RedisError

__all__ = ["error_body", "error_middleware", "json_error"]

log = get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(message: str, field: str | None = None) -> dict[str, str | None]:
    return {"error": message, "field": field}


def json_error(status: int, message: str, field: str | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(message, field), status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except IngestError as exc:
        return json_error(exc.status, exc.message, exc.field)
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, f"request body is larger than {request.client_max_size} bytes", "body")
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


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response
