"""The exception tree.

    ResponderError
    ├── ConfigError            configuration could not be loaded (carries the problems)
    ├── IngestError            a webhook was refused: HTTP status + the field at fault
    │   ├── PayloadError       400/415/413/422: body malformed, wrong type, field missing
    │   └── SignatureError     401: missing or bad signature / token
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
    """A webhook was refused; rendered as `{"error": message, "field": field}` with `status`."""

    status = 400

    def __init__(self, message: str, field: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status


class PayloadError(IngestError):
    """The body is malformed, of the wrong type, too large or lacks a required field."""


class SignatureError(IngestError):
    """The request's signature or token is missing or wrong."""

    status = 401


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
