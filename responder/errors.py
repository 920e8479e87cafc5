"""The exception tree.

    ResponderError
    ├── ConfigError            configuration could not be loaded (carries the problems)
    ├── IngestError            a webhook was refused: HTTP status + the field at fault
    │   ├── PayloadError       400/415/413/422: body malformed, wrong type, field missing
    │   ├── SignatureError     401: missing or bad signature / token
    │   └── RateLimited        429: over a webhook rate limit (with Retry-After)
    ├── StoreUnavailable       Redis is not reachable
    └── ActionError            a playbook step failed
        ├── RetryableActionError   network error, 5xx, 429: the runner may try again
        └── PermanentActionError   auth, validation, 4xx: trying again will not help
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActionError",
    "ConfigError",
    "IngestError",
    "PayloadError",
    "PermanentActionError",
    "RateLimited",
    "ResponderError",
    "RetryableActionError",
    "SignatureError",
    "StoreUnavailable",
]


class ResponderError(Exception):
    """Base of every error responder raises on purpose."""


class ConfigError(ResponderError):
    """Configuration could not be loaded; `problems` lists `file:line:col: field: message` lines."""

    def __init__(self, problems: list[Any]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class IngestError(ResponderError):
    """A webhook was refused; rendered as `{"error": message, "field": field}` with `status` (and `headers`)."""

    status = 400

    def __init__(self, message: str, field: str | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}
        if status is not None:
            self.status = status


class PayloadError(IngestError):
    """The body is malformed, of the wrong type, too large or lacks a required field."""


class SignatureError(IngestError):
    """The request's signature or token is missing or wrong."""

    status = 401


class RateLimited(IngestError):
    """Over a webhook rate limit: 429 with `Retry-After` (whole seconds, at least 1); `field` names the limit."""

    status = 429

    def __init__(self, message: str, field: str, retry_after: int) -> None:
        super().__init__(message, field, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


class StoreUnavailable(ResponderError):
    """Redis could not be reached."""


class ActionError(ResponderError):
    """A playbook step failed."""

    retryable = False

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryableActionError(ActionError):
    """The step may succeed if tried again (network error, 5xx, 429)."""

    retryable = True


class PermanentActionError(ActionError):
    """Trying the step again will not help (auth, validation, other 4xx)."""
