"""Dashboard sessions: log in once with an API token, then a signed cookie; CSRF tokens on every form.

- `POST /ui/login` with the write or the read token (and an optional name for the timeline) sets the cookie
  `responder_session`: HttpOnly, SameSite=Strict, Path=/ui, Secure when the daemon is reached over https,
  valid for 12 hours. Its value is `payload.signature`: the scope (read|write), the name, the expiry and a
  random nonce, signed with HMAC-SHA256 under a key derived from the configured tokens. Every replica
  derives the same key (no shared session store), and changing a token ends every session.
- Forms carry `csrf` = HMAC(key, nonce): an action needs the cookie and the matching field, and every POST
  under /ui is refused when its Origin (or Referer) names another site.
- The read token protects the pages when `server.api_tokens.read` is set; the actions need a write session.
  `Authorization: Bearer <token>` works too (scripts; no cookie, so no CSRF field needed).
- With no write token configured the actions are disabled, as in the API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from aiohttp import web

from responder.config.loader import LoadedConfig
from responder.ingest.base import constant_time_equal
from responder.keys import CLOCK, CONFIG

__all__ = ["COOKIE", "SESSION_TTL", "Access", "access", "check_origin", "clear_session", "csrf_ok",
           "login_scope", "start_session"]

COOKIE = "responder_session"
SESSION_TTL = timedelta(hours=12)
_NAME = re.compile(r"[^A-Za-z0-9 ._@+\-]")


@dataclass(frozen=True)
class Access:
    """Who is looking: `scope` none|read|write, the actor written on the timeline, the CSRF token for forms."""

    scope: str
    actor: str
    csrf: str = ""
    via: str = "open"  # open | session | bearer
    name: str = ""

    @property
    def can_read(self) -> bool:
        return self.scope in ("read", "write")

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


def _key(loaded: LoadedConfig) -> bytes | None:
    tokens = loaded.config.server.api_tokens
    if tokens.read is None and tokens.write is None:
        return None
    material = b"\0".join([b"responder-ui-session-v1",
                           *((t.get_secret_value().encode() if t else b"") for t in (tokens.write, tokens.read))])
    return hashlib.sha256(material).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: bytes) -> str:
    return _b64(hmac.new(key, payload, hashlib.sha256).digest())


def _csrf(key: bytes, nonce: str) -> str:
    return _b64(hmac.new(key, b"csrf\0" + nonce.encode(), hashlib.sha256).digest()[:18])


def login_scope(loaded: LoadedConfig, token: str) -> str | None:
    """The scope a token grants (write beats read), or None."""
    tokens = loaded.config.server.api_tokens
    if token and tokens.write is not None and constant_time_equal(token, tokens.write.get_secret_value()):
        return "write"
    if token and tokens.read is not None and constant_time_equal(token, tokens.read.get_secret_value()):
        return "read"
    return None


def clean_name(raw: str) -> str:
    return _NAME.sub("", raw).strip()[:60]


def _actor(name: str) -> str:
    return f"user:{name}" if name else "ui"


def _secure(request: web.Request) -> bool:
    public = request.app[CONFIG].config.server.public_url or ""
    return request.secure or public.startswith("https://")


def start_session(request: web.Request, response: web.StreamResponse, scope: str, name: str) -> None:
    key = _key(request.app[CONFIG])
    if key is None:
        return
    expires = int(request.app[CLOCK].now().timestamp() + SESSION_TTL.total_seconds())
    payload = json.dumps({"s": scope, "n": name, "e": expires, "r": secrets.token_urlsafe(16)},
                         separators=(",", ":")).encode()
    value = f"{_b64(payload)}.{_sign(key, payload)}"
    response.set_cookie(COOKIE, value, max_age=int(SESSION_TTL.total_seconds()), path="/ui", httponly=True,
                        samesite="Strict", secure=_secure(request))


def clear_session(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/ui", samesite="Strict", secure=_secure(request))


def _session(request: web.Request, key: bytes) -> dict[str, object] | None:
    value = request.cookies.get(COOKIE, "")
    encoded, _, signature = value.partition(".")
    if not encoded or not signature:
        return None
    try:
        payload = _unb64(encoded)
        if not hmac.compare_digest(_sign(key, payload), signature):
            return None
        data = json.loads(payload)
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict) or data.get("s") not in ("read", "write"):
        return None
    expires = data.get("e")
    if not isinstance(expires, int) or expires <= request.app[CLOCK].now().timestamp():
        return None
    return data


def access(request: web.Request) -> Access:
    """Who the request is from. A bad bearer token is refused outright (401); a bad cookie is ignored."""
    loaded = request.app[CONFIG]
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        scope = login_scope(loaded, header[7:].strip())
        if scope is None:
            raise web.HTTPUnauthorized(reason="invalid bearer token")
        return Access(scope, "api", via="bearer")
    key = _key(loaded)
    if key is not None:
        session = _session(request, key)
        if session is not None:
            name = str(session.get("n") or "")
            return Access(str(session["s"]), _actor(name), _csrf(key, str(session.get("r", ""))), "session", name)
    open_reads = loaded.config.server.api_tokens.read is None
    return Access("read" if open_reads else "none", "anonymous")


def csrf_ok(request: web.Request, who: Access, given: str) -> bool:
    """Bearer requests carry no cookie and need no CSRF field; a session's form must carry its token."""
    if who.via == "bearer":
        return True
    return bool(who.csrf) and hmac.compare_digest(who.csrf, given)


def check_origin(request: web.Request) -> bool:
    """A POST from a page of another site is refused (browsers send Origin on POST; else Referer).

    No Origin and no Referer (curl, scripts) passes: CSRF needs a browser, and browsers send Origin on POST.
    """
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return source is None
    netloc = urlsplit(source).netloc
    # the Host the request came to (a proxy forwards it as is), or the configured public URL's
    public = request.app[CONFIG].config.server.public_url
    return netloc == request.host or (public is not None and netloc == urlsplit(public).netloc)
