"""Structured logging: one JSON object per line for structlog and stdlib records alike, secrets redacted.

structlog events end in `render_to_log_kwargs`, so they reach stdlib logging as a plain message with the
fields as `extra`. That is what Sentry's LoggingIntegration reads for breadcrumbs. One stdlib handler with
a `ProcessorFormatter` then renders every record (ours, aiohttp's, asyncio's) the same way.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "bind",
    "configure_logging",
    "get_logger",
    "is_secret_key",
    "redact_text",
    "redact_value",
    "refresh_secrets",
    "unbind",
]

REDACTED = "***"
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words
_SECRET_KEY = re.compile(r"token|secret|passw(or)?d|authorization|api[_-]?key|routing[_-]?key|dsn", re.IGNORECASE)
# Keys stdlib refuses in `extra` (makeRecord raises KeyError): renamed to `<key>_` before they get there.
# exc_info and stack_info are real logging keyword arguments and pass through.
_RECORD_ATTRS = (frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}) - {"exc_info", "stack_info"}
_HANDLER_NAME = "responder.logs"
_LEAD_KEYS = ("timestamp", "level", "logger", "event")

SecretSource = Callable[[], Iterable[str]]


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True when a field name looks like it holds a credential (token, secret, password, dsn...)."""
    return _SECRET_KEY.search(key) is not None


def _usable(secrets: Iterable[str]) -> list[str]:
    found = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
    # a header-valued secret ("Bearer <token>", "Basic <b64>"): the credential alone is secret too, since a far end
    # that refuses it may echo just that part
    found |= {s.split(None, 1)[1] for s in found if len(s.split(None, 1)) == 2 and len(s.split(None, 1)[1]) >=
              MIN_SECRET_LENGTH}
    # Longest first, so a secret that contains another one is replaced whole.
    return sorted(found, key=len, reverse=True)


def _replace(text: str, secrets: Sequence[str]) -> str:
    if len(text) < MIN_SECRET_LENGTH:  # every usable secret is at least this long (most values and keys are not)
        return text
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret (6 characters or longer) in `text` by `***`."""
    return _replace(text, _usable(secrets))


def redact_value(value: Any, secrets: Iterable[str], *, mask_keys: bool = True) -> Any:
    """Copy of `value` with secrets replaced in every string, recursively through dicts, lists and tuples.

    With `mask_keys`, a dict value whose key looks secret (`is_secret_key`) becomes `***` whatever it holds.
    """
    return _redact(value, _usable(secrets), mask_keys)


def _redact(value: Any, secrets: Sequence[str], mask_keys: bool) -> Any:
    if isinstance(value, str):
        return _replace(value, secrets) if secrets else value
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str):
                if mask_keys and is_secret_key(key) and item is not None:
                    out[_replace(key, secrets)] = REDACTED
                    continue
                key = _replace(key, secrets)
            out[key] = _redact(item, secrets, mask_keys)
        return out
    if isinstance(value, list | tuple):
        items = [_redact(item, secrets, mask_keys) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value


class _Redactor:
    """Processor masking secret values and secret-looking keys; runs after the exception is rendered.

    The secret values are asked for once (on the first line) and kept: walking the whole configuration on every
    line was the largest part of a line's cost. `refresh_secrets()` asks again (after a configuration reload).
    """

    def __init__(self, secrets: SecretSource | None) -> None:
        self._secrets = secrets
        self._values: list[str] | None = None

    def refresh(self) -> None:
        self._values = None

    def values(self) -> list[str]:
        if self._values is None:
            self._values = _usable(self._secrets()) if self._secrets is not None else []
        return self._values

    def __call__(self, _logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        redacted: EventDict = _redact(event_dict, self.values(), True)
        return redacted


_redactors: list[_Redactor] = []  # the one of the current configuration


def refresh_secrets() -> None:
    """Ask the configured secret source again on the next line (call it when the configuration is reloaded)."""
    for redactor in _redactors:
        redactor.refresh()


def _fallback(value: Any) -> Any:
    """What JSON cannot say natively: the object's `__structlog__()`, else its repr (as structlog's renderer)."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


def _dumps(event_dict: EventDict, **_kw: Any) -> str:
    """One JSON line with orjson (several times faster than json.dumps); json.dumps for what orjson refuses
    (integers beyond 64 bits, ...)."""
    try:
        return orjson.dumps(event_dict, default=_fallback, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(event_dict, default=_fallback)


def _order_keys(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Put timestamp, level, logger and event first so lines read well in a terminal."""
    lead = {k: event_dict.pop(k) for k in _LEAD_KEYS if k in event_dict}
    return {**lead, **event_dict}


def _rename_record_clashes(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Rename fields such as `name` or `module` that stdlib would reject in `extra` (`name` -> `name_`)."""
    for key in [k for k in event_dict if k in _RECORD_ATTRS]:
        event_dict[f"{key}_"] = event_dict.pop(key)
    return event_dict


def configure_logging(
    level: str = "INFO",
    *,
    stream: TextIO | None = None,
    secrets: SecretSource | None = None,
    cache_loggers: bool = False,
) -> None:
    """Send every log record to `stream` (default stdout) as one JSON line; safe to call again.

    Lines carry `timestamp` (ISO, UTC), `level`, `logger`, `event`, the bound context ids and the fields.
    `secrets` returns the secret values to mask; it is called once, on the first line after this call (and again
    after `refresh_secrets()`). `cache_loggers` (the daemon): each logger is built once, on its first use, and
    ignores a later `configure()` (tests leave it off: `structlog.testing.capture_logs` reconfigures structlog).
    """
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            _rename_record_clashes,
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached by default: a cached logger would ignore a later configure() such as capture_logs.
        cache_logger_on_first_use=cache_loggers,
    )
    redactor = _Redactor(secrets)
    _redactors[:] = [redactor]
    pre_chain: list[Processor] = [
        structlog.stdlib.ExtraAdder(),  # our fields arrive as record attributes
        structlog.contextvars.merge_contextvars,  # and stdlib records get the ids too
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redactor,
            _order_keys,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named `name` (use the module's `__name__`)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def bind(**ids: str | None) -> None:
    """Bind context ids (incident_id, event_id, rule_id, run_id) to every later line of this task; None is skipped."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in ids.items() if v is not None})


def unbind(*names: str) -> None:
    """Remove context ids bound with `bind`."""
    structlog.contextvars.unbind_contextvars(*names)
