"""The ingest plug-in contract: one adapter per vendor verifies, parses and normalizes a webhook.

Adapters do no I/O: `routes.py` reads the request into an `IngestRequest`, calls `verify` then
`parse`, and stores the events. A vendor is one module with a subclass, listed in `__init__.py`.
"""

from __future__ import annotations

import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from responder.config.base import StrictModel
from responder.errors import PayloadError, SignatureError
from responder.events import Event

__all__ = ["IngestAdapter", "IngestRequest", "constant_time_equal", "dig", "get_field", "load_json", "parse_time"]


@dataclass(frozen=True)
class IngestRequest:
    """Everything an adapter may look at, read once from the HTTP request."""

    body: bytes
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    query: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"
    content_type: str = "application/json"
    path_token: str | None = None  # /hooks/{source}/{token}
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class IngestAdapter(ABC):
    """One vendor's webhook: `verify` raises SignatureError, `parse` raises PayloadError(field=...)."""

    source: ClassVar[str]
    Config: ClassVar[type[StrictModel]]
    #: content types `parse` understands; anything else is a 415
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    #: whether a GET with a query string is a delivery (UptimeRobot's legacy web-hook)
    accepts_get: ClassVar[bool] = False

    def __init__(self, config: StrictModel) -> None:
        self.config = config

    @property
    def verifies(self) -> bool:
        """Whether deliveries are authenticated with the current config (warned about at start if not)."""
        return True

    @abstractmethod
    def verify(self, request: IngestRequest) -> None:
        """Raise SignatureError unless the request is authentic."""

    @abstractmethod
    def parse(self, request: IngestRequest) -> list[Event]:
        """Turn the body into events; pure. Unknown-but-valid payloads may return []."""


def constant_time_equal(a: str, b: str) -> bool:
    # header values that were not UTF-8 arrive with surrogate escapes: compare their original bytes, not fail
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


def load_json(body: bytes) -> Any:
    """Parse a JSON body or raise a 400 naming the body."""
    if not body.strip():
        raise PayloadError("request body is empty", field="body")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}", field="body") from None
    except RecursionError:
        raise PayloadError("body is nested too deeply", field="body") from None


def dig(obj: Any, path: str, *, required: bool = True, kind: type | tuple[type, ...] | None = None) -> Any:
    """Read `a.b.0.c` from parsed JSON; a missing or mistyped required field is a 422 naming it."""
    current = obj
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            if required:
                raise PayloadError(f"missing required field {path!r}", field=path, status=422)
            return None
    return _checked(current, path, required, kind)


def get_field(obj: dict[str, Any], key: str, path: str, *, required: bool = True,
              kind: type | tuple[type, ...] | None = None) -> Any:
    """`obj[key]` with `dig`'s checks and messages, `path` naming the field (one level: no path walk per field)."""
    if key not in obj:
        if required:
            raise PayloadError(f"missing required field {path!r}", field=path, status=422)
        return None
    return _checked(obj[key], path, required, kind)


def _checked(current: Any, path: str, required: bool, kind: type | tuple[type, ...] | None) -> Any:
    if current is None and required:
        raise PayloadError(f"required field {path!r} is null", field=path, status=422)
    if kind is not None and current is not None and not isinstance(current, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise PayloadError(f"field {path!r} must be of type {names}", field=path, status=422)
    return current


def parse_time(raw: Any, field_name: str, default: datetime) -> datetime:
    """ISO 8601 or Unix seconds -> aware UTC datetime; Go's zero time and blanks give `default`."""
    if raw in (None, "", 0) or (isinstance(raw, str) and raw.startswith("0001-01-01")):
        return default
    try:
        if isinstance(raw, int | float) or (isinstance(raw, str) and raw.replace(".", "", 1).isdigit()):
            return datetime.fromtimestamp(float(raw), UTC)
        if isinstance(raw, str):
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise PayloadError(f"field {field_name!r} is not a valid timestamp", field=field_name, status=422)


def require_signature(ok: bool, header: str) -> None:
    if not ok:
        raise SignatureError(f"invalid signature in {header}", field=header)
