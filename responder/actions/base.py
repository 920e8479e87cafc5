"""The action plug-in contract: a provider groups a vendor's actions, each with a params model.

Providers do the step once and classify failures (RetryableActionError / PermanentActionError);
only the runner retries. A provider whose credentials are missing is not built, and its steps
are recorded as skipped with the reason.

Vendor providers talk HTTP through `VendorApi`, which owns the classification (network error,
timeout, 5xx and 429 with Retry-After are retryable; 401/403 and other 4xx are permanent) and
keeps secrets out of every message. In dry-run the runner asks `plan()` instead of `run()`: the
provider describes the requests it would send and nothing is called.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import aiohttp
from pydantic import Field, SecretStr

from responder.clock import Clock
from responder.config.base import Duration, StrictModel
from responder.errors import PermanentActionError, RetryableActionError
from responder.logs import redact_text, redact_value

if TYPE_CHECKING:
    from responder.incidents.model import Incident
    from responder.incidents.service import IncidentService
    from responder.store.provider_state import ProviderState
    from responder.store.status import StatusStore

__all__ = [
    "ActionProvider",
    "ActionResult",
    "CheckOutcome",
    "PlannedCall",
    "ProbeChecker",
    "ProviderDeps",
    "Remediation",
    "StepContext",
    "VendorApi",
    "VendorConfig",
    "VendorResponse",
    "call_once",
    "classify_http",
]

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "cookie", "x-auth-token"})


@dataclass(frozen=True)
class ActionResult:
    """What a step did: `summary` goes on the timeline, `output` is available to later steps."""

    summary: str
    output: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepContext:
    incident: Incident
    run_id: str
    step: str
    dry_run: bool = False
    #: public link to the incident (dashboard), when server.public_url is set
    incident_url: str | None = None

    @property
    def idempotency_key(self) -> str:
        """Stable per (run, step): sent as Idempotency-Key where the vendor honours one."""
        return f"{self.run_id}:{self.step}"


@dataclass(frozen=True)
class PlannedCall:
    """One request a step would send (dry-run): secrets are redacted before it reaches the timeline."""

    method: str
    url: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    note: str = ""

    def redacted(self, secrets: list[str]) -> dict[str, Any]:
        headers = {k: ("***" if k.lower() in SECRET_HEADERS else redact_text(v, secrets))
                   for k, v in self.headers.items()}
        out: dict[str, Any] = {"method": self.method, "url": redact_text(self.url, secrets), "headers": headers,
                               "body": redact_value(self.body, secrets)}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class Remediation:
    """What a step changes, for the remediation budget: kind (rollback, restart, ...) and target."""

    kind: str
    target: str


@dataclass(frozen=True)
class CheckOutcome:
    """One health check: healthy, or not (with a reason); `answered` is False when nothing replied."""

    healthy: bool
    reason: str = ""
    value: float | None = None
    answered: bool = True


class ProbeChecker(Protocol):
    """Runs a named probe once (provided by the probes package)."""

    def has_probe(self, probe_id: str) -> bool: ...

    async def check(self, probe_id: str) -> CheckOutcome: ...


@dataclass(frozen=True)
class ProviderDeps:
    """What providers may use; created once by the app."""

    http: aiohttp.ClientSession
    clock: Clock
    incidents: IncidentService
    status: StatusStore
    state: ProviderState
    probes: ProbeChecker | None = None
    #: server.public_url, for links back to the incident
    public_url: str | None = None


class VendorConfig(StrictModel):
    """Base of a vendor's `providers.<name>` section: secrets are SecretStr, the API URL can be overridden."""

    base_url: str | None = Field(default=None, description="override the vendor API URL (tests, proxies)")
    timeout: Duration = Field(default=timedelta(seconds=15), description="per HTTP request to the vendor")

    def has_credentials(self) -> bool:
        return bool(self.secrets())

    def secrets(self) -> list[str]:
        return [v.get_secret_value() for v in self.__dict__.values()
                if isinstance(v, SecretStr) and v.get_secret_value()]


class ActionProvider(ABC):
    name: ClassVar[str]
    #: credentials model under `providers.<name>`; None when the provider needs none
    Config: ClassVar[type[StrictModel] | None] = None
    #: verb -> params model; the action's full name is `<name>.<verb>` (or just `<verb>` for builtin)
    actions: ClassVar[dict[str, type[StrictModel]]]

    def __init__(self, config: StrictModel | None, deps: ProviderDeps) -> None:
        self.config = config
        self.deps = deps

    @classmethod
    def action_names(cls) -> dict[str, type[StrictModel]]:
        return {(verb if cls.name == "builtin" else f"{cls.name}.{verb}"): p for verb, p in cls.actions.items()}

    @abstractmethod
    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        """Do the step once; raise RetryableActionError or PermanentActionError on failure."""

    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        """The requests `run` would send (dry-run). Override to show the vendor's method, URL and body."""
        return [PlannedCall("CALL", f"{self.name}.{verb}", params.model_dump(mode="json", by_alias=True))]

    def remediation(self, verb: str, params: StrictModel) -> Remediation | None:
        """The change a step makes, when it counts against the remediation budget (rollback, restart)."""
        return None

    def secrets(self) -> list[str]:
        return self.config.secrets() if isinstance(self.config, VendorConfig) else []

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing of their own
        """Release what the provider holds beyond the shared session (called once at shutdown)."""


@dataclass(frozen=True)
class VendorResponse:
    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        try:
            return json.loads(self.text) if self.text else None
        except ValueError:
            raise PermanentActionError(f"unexpected response (not JSON): {self.text[:120]!r}") from None


class VendorApi:
    """HTTP to one vendor on the app's shared session, with failures classified and secrets redacted.

    `vendor` names the provider in every message; `secrets` are removed from error text.
    """

    def __init__(self, vendor: str, http: aiohttp.ClientSession, base_url: str, *, headers: Mapping[str, str],
                 secrets: list[str], timeout: timedelta = timedelta(seconds=15),
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.vendor = vendor
        self.ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers)
        self.secrets = secrets
        self.timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def planned(self, method: str, path: str, body: Any = None, *, headers: Mapping[str, str] | None = None,
                note: str = "") -> PlannedCall:
        return PlannedCall(method, self.url(path), body, {**self.headers, **(headers or {})}, note)

    async def request(self, method: str, path: str, *, json_body: Any = None, params: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None, ok: tuple[int, ...] = (),
                      content_type: str | None = None, data: str | None = None) -> VendorResponse:
        """Send one request; 2xx (or a status in `ok`) returns, anything else raises a classified error."""
        url = self.url(path)
        if content_type:  # e.g. application/strategic-merge-patch+json for Kubernetes PATCH
            headers = {**(headers or {}), "Content-Type": content_type}
        try:
            async with self.http.request(method, url, json=json_body, data=data, params=params, timeout=self.timeout,
                                         headers={**self.headers, **(headers or {})}, ssl=self.ssl) as resp:
                text = await resp.text(errors="replace")
                response = VendorResponse(resp.status, dict(resp.headers), text)
        except TimeoutError:
            raise RetryableActionError(f"{self.vendor}: {method} {self._path(url)} timed out after "
                                       f"{self.timeout.total:g}s") from None
        except aiohttp.ClientConnectorCertificateError as exc:  # a configuration problem: retrying will not help
            raise PermanentActionError(f"{self.vendor}: {method} {self._path(url)}: the server's TLS certificate "
                                       f"was not trusted ({self._clean(str(exc.certificate_error))}); check "
                                       f"providers.{self.vendor}") from None
        except aiohttp.InvalidURL:
            raise PermanentActionError(f"{self.vendor}: invalid URL {self._path(url)!r}") from None
        except aiohttp.ClientError as exc:
            raise RetryableActionError(f"{self.vendor}: {method} {self._path(url)} failed: "
                                       f"{exc.__class__.__name__}: {self._clean(str(exc))}") from None
        if response.status in ok:
            return response
        self.raise_for_status(method, url, response)
        return response

    def raise_for_status(self, method: str, url: str, response: VendorResponse) -> None:
        status = response.status
        if 200 <= status < 300:
            return
        what = f"{self.vendor}: {method} {self._path(url)}"
        if status in (401, 403):
            raise PermanentActionError(f"{what}: HTTP {status}, the credentials were refused "
                                       f"(check providers.{self.vendor} in responder.yaml)")
        try:
            classify_http(status, self._clean(response.text), response.headers.get("Retry-After"))
        except (RetryableActionError, PermanentActionError) as exc:
            raise type(exc)(f"{what}: {exc}", retry_after=exc.retry_after) from None

    def _path(self, url: str) -> str:
        return self._clean(url.split("?", 1)[0])

    def _clean(self, text: str) -> str:
        return redact_text(text, self.secrets)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (delta form; an HTTP date is treated as unknown)."""
    if value and value.strip().replace(".", "", 1).isdigit():
        return float(value)
    return None


def classify_http(status: int, body: str, retry_after: str | None = None) -> None:
    """2xx passes; 429 and 5xx are retryable (honouring Retry-After); other statuses are permanent."""
    if 200 <= status < 300:
        return
    snippet = body[:200].replace("\n", " ")
    if status == 429 or status >= 500:
        raise RetryableActionError(f"HTTP {status}: {snippet}", retry_after=retry_after_seconds(retry_after))
    raise PermanentActionError(f"HTTP {status}: {snippet}")


async def call_once(provider: ActionProvider, verb: str, params: StrictModel, ctx: StepContext,
                    limit: float) -> ActionResult:
    """One attempt of a step as the runner makes it: running past `limit` seconds is a retryable failure."""
    try:
        async with asyncio.timeout(limit):
            return await provider.run(verb, params, ctx)
    except TimeoutError:
        raise RetryableActionError(f"timed out after {limit:g}s") from None
