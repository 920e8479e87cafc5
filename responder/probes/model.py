"""Probe models: the shape of probes/*.yaml. Each probe has exactly one kind block (http, tcp, redis, tls, dns).

A target that resolves empty (an unset `${VAR:-}`) is not an error: the probe is loaded but disabled,
and the daemon says so loudly at start. That lets the bundled probes ship with their URLs in env vars.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from responder.clock import to_ms
from responder.config.base import Duration, StrictModel, format_duration

__all__ = [
    "KINDS",
    "DnsCheck",
    "HttpCheck",
    "HttpExpect",
    "Probe",
    "ProbeSettings",
    "ProbesFile",
    "RedisCheck",
    "TcpCheck",
    "TlsCheck",
]

KINDS = ("http", "tcp", "redis", "tls", "dns")
JsonScalar = str | int | float | bool | None
_DEFAULT_TIMEOUT = timedelta(seconds=10)


def _as_list(raw: Any) -> Any:
    return [raw] if isinstance(raw, int | str) and not isinstance(raw, bool) else raw


class HttpExpect(StrictModel):
    """What a healthy answer looks like; every condition given must hold."""

    status: list[int] = Field(default_factory=list, description="accepted statuses (one or a list); default: any 2xx")
    json_: dict[str, JsonScalar] = Field(
        default_factory=dict, alias="json",
        description='dotted paths into the JSON body and their expected values: {"checks.database": "healthy"}')
    body_contains: str | None = Field(default=None, description="text the body must contain")

    @field_validator("status", mode="before", json_schema_input_type=int | list[int])
    @classmethod
    def _one_or_many(cls, raw: Any) -> Any:
        return _as_list(raw)

    @field_validator("status")
    @classmethod
    def _valid_statuses(cls, value: list[int]) -> list[int]:
        for status in value:
            if not 100 <= status <= 599:
                raise ValueError(f"{status} is not an HTTP status")
        return value


class HttpCheck(StrictModel):
    """An HTTP request; healthy when the answer meets `expect` within `max_latency`."""

    url: str | None = Field(description="http(s) URL; empty (an unset ${VAR:-}) disables the probe")
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict, description="values may be ${ENV} secrets")
    body: str | None = Field(default=None, description="request body, sent as is")
    expect: HttpExpect = Field(default_factory=HttpExpect)
    max_latency: Duration | None = Field(default=None, description="slower answers count as failing")
    follow_redirects: bool = True
    verify_tls: bool = Field(default=True, description="check the server certificate of https URLs")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


class TcpCheck(StrictModel):
    """A TCP connection; healthy when it is accepted within the timeout."""

    host: str | None = Field(description="name or address; empty disables the probe")
    port: int = Field(ge=1, le=65535)


class RedisCheck(StrictModel):
    """PING, and optionally the length of a list, sorted set, stream or set against `max`/`min`."""

    url: str | None = Field(description="redis://, rediss:// or unix:// URL; empty disables the probe")
    length_of: str | None = Field(default=None, description="a key: its length (LLEN/ZCARD/XLEN/SCARD by TYPE) "
                                                            "is the value; a missing key counts as 0")
    max: int | None = Field(default=None, ge=0, description="failing when the length is above this")
    min: int | None = Field(default=None, ge=0, description="failing when the length is below this")

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("not a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _bounds_need_a_key(self) -> RedisCheck:
        if (self.max is not None or self.min is not None) and self.length_of is None:
            raise ValueError("`max`/`min` need `length_of` (the key whose length they bound)")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class TlsCheck(StrictModel):
    """A TLS handshake; the value is the days until the certificate expires, failing below `min_days`."""

    host: str | None = Field(description="name or address; empty disables the probe")
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = Field(default=None, description="SNI and the name checked (default: host)")
    min_days: float = Field(default=14, ge=0, description="failing when fewer days are left")
    verify: bool = Field(default=True, description="an untrusted or mismatched certificate is failing")
    ca_file: str | None = Field(default=None, description="PEM bundle to trust instead of the system's")


class DnsCheck(StrictModel):
    """A lookup through the system resolver; healthy when it answers (with `expect` among the addresses)."""

    name: str | None = Field(description="the name to resolve; empty disables the probe")
    record: Literal["A", "AAAA"] = "A"
    expect: list[str] = Field(default_factory=list, description="an address (or several) that must be returned")

    @field_validator("expect", mode="before", json_schema_input_type=str | list[str])
    @classmethod
    def _one_or_many(cls, raw: Any) -> Any:
        return _as_list(raw)


class Probe(StrictModel):
    """One scheduled check. Its results are events: source `probe`, name = id, status ok/failing."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", description="the event name rules match on")
    description: str = ""
    http: HttpCheck | None = None
    tcp: TcpCheck | None = None
    redis: RedisCheck | None = None
    tls: TlsCheck | None = None
    dns: DnsCheck | None = None
    every: Duration = Field(default=timedelta(seconds=30), description="interval between runs (one run per "
                                                                       "interval across all replicas)")
    timeout: Duration | None = Field(default=None, description="one run's time limit (default: 10s, at most every)")
    jitter: Duration = Field(default=timedelta(0), description="random delay added to each run, below every/2")
    service: str | None = Field(default=None, description="copied onto the events (event.service, labels.service)")
    component: str | None = Field(default=None, description="status page component whose history bars show "
                                                            "this probe's results")
    labels: dict[str, str] = Field(default_factory=dict, description="copied onto every event")
    enabled: bool = True

    @field_validator("every")
    @classmethod
    def _not_too_often(cls, value: timedelta) -> timedelta:
        if value < timedelta(milliseconds=100):
            raise ValueError("must be at least 100ms")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Probe:
        kinds = [k for k in KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = f" (found {', '.join(kinds)})" if kinds else ""
            raise ValueError(f"give exactly one of {', '.join(KINDS)}{found}")
        if self.timeout is not None and self.timeout > self.every:
            raise ValueError(f"timeout ({format_duration(self.timeout)}) must not exceed every "
                             f"({format_duration(self.every)}): the next run would be skipped")
        if self.timeout is not None and self.timeout <= timedelta(0):
            raise ValueError("timeout must be above 0s")
        if self.jitter * 2 >= self.every:
            raise ValueError(f"jitter ({format_duration(self.jitter)}) must be below half of every "
                             f"({format_duration(self.every)})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def check(self) -> HttpCheck | TcpCheck | RedisCheck | TlsCheck | DnsCheck:
        block = getattr(self, self.kind)
        assert isinstance(block, HttpCheck | TcpCheck | RedisCheck | TlsCheck | DnsCheck)
        return block

    @property
    def deadline(self) -> float:
        """One run's time limit in seconds."""
        return (self.timeout or min(_DEFAULT_TIMEOUT, self.every)).total_seconds()

    @property
    def interval_ms(self) -> int:
        return max(round(self.every.total_seconds() * 1000), 1)

    @property
    def phase_ms(self) -> int:
        """A fixed offset within the interval, from the id: every replica fires a probe at the same moments,
        and many probes with one interval are spread over it instead of all firing at once."""
        digest = hashlib.sha1(self.id.encode(), usedforsecurity=False).hexdigest()
        return int(digest[:12], 16) % self.interval_ms

    def slot(self, now: datetime) -> int:
        """The run this moment belongs to: runs are due at slot * interval + phase (lateness < interval)."""
        return (to_ms(now) - self.phase_ms) // self.interval_ms

    def empty_target(self) -> str | None:
        """The target field that resolved empty (`http.url`...), which disables the probe."""
        field = {"http": "url", "tcp": "host", "redis": "url", "tls": "host", "dns": "name"}[self.kind]
        value = getattr(self.check, field)
        return f"{self.kind}.{field}" if value is None or not str(value).strip() else None


class ProbesFile(StrictModel):
    """A file under probes/."""

    probes: list[Probe] = Field(default_factory=list)


class ProbeSettings(StrictModel):
    """`probing:` in responder.yaml: how this replica runs probes."""

    max_concurrent: int = Field(default=100, ge=1, le=10_000, description="probes running at once on one replica")
    keep_results: int = Field(default=100, ge=1, le=10_000, description="results kept per probe for the API")
