"""Grafana unified alerting webhook contact point: one Event per alert in `alerts`.

The body is a superset of Alertmanager's v4 payload, so alerts are normalized by
`alertmanager.parse_alerts` (see that module for the field mapping and the delivery id
`grafana:<fingerprint>:<startsAt>:<status>`).

Authentication: any combination of the contact point's options; every configured one must pass.
- `bearer_token`: `Authorization: Bearer <token>`; `basic_auth`: HTTP basic (Grafana refuses both
  at once, and so does this config).
- `hmac_secret`: lowercase hex HMAC-SHA256 of the raw body, or of `<ts> + ":" + <body>` when the
  timestamp header is present; then `<ts>` (Unix seconds) must lie within `max_skew_seconds` of
  the time the request was received. The signature is read from `signature_header` when set,
  else `X-Grafana-Alerting-Signature` (Grafana's docs) or `X-Grafana-Alert-Signature` (Grafana's
  library default): the two disagree, so both are accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar

from pydantic import Field, SecretStr

from responder.config.base import StrictModel
from responder.errors import SignatureError
from responder.events import Event
from responder.ingest.alertmanager import HttpAuthConfig, check_http_auth, parse_alerts
from responder.ingest.base import IngestAdapter, IngestRequest, constant_time_equal, load_json, require_signature

__all__ = ["SIGNATURE_HEADERS", "GrafanaAdapter", "GrafanaConfig"]

#: docs default first, library default second
SIGNATURE_HEADERS = ("X-Grafana-Alerting-Signature", "X-Grafana-Alert-Signature")


class GrafanaConfig(HttpAuthConfig):
    """`ingest.grafana`: the webhook contact point's authentication settings."""

    hmac_secret: SecretStr | None = Field(
        default=None, description="the contact point's HMAC signature secret; unset skips the signature check"
    )
    signature_header: str | None = Field(
        default=None,
        description="header carrying the HMAC signature, if the contact point sets a custom one "
        "(X-Grafana-Alerting-Signature and X-Grafana-Alert-Signature are always accepted)",
    )
    timestamp_header: str = Field(
        default="X-Grafana-Alerting-Timestamp",
        description="header carrying the Unix-seconds timestamp that is signed with the body, when present",
    )
    max_skew_seconds: int = Field(
        default=300, ge=1, description="reject signed timestamps further than this from the time of receipt"
    )


class GrafanaAdapter(IngestAdapter):
    """Grafana webhook contact point (payload version "1")."""

    source: ClassVar[str] = "grafana"
    Config: ClassVar[type[StrictModel]] = GrafanaConfig
    config: GrafanaConfig

    @property
    def verifies(self) -> bool:
        cfg = self.config
        return cfg.hmac_secret is not None or cfg.bearer_token is not None or cfg.basic_auth is not None

    def verify(self, request: IngestRequest) -> None:
        check_http_auth(request, self.config)
        if self.config.hmac_secret is not None:
            self._verify_hmac(request, self.config.hmac_secret.get_secret_value())

    def parse(self, request: IngestRequest) -> list[Event]:
        return parse_alerts(load_json(request.body), self.source, request)

    def _signature_headers(self) -> tuple[str, ...]:
        custom = self.config.signature_header
        return (custom, *SIGNATURE_HEADERS) if custom and custom not in SIGNATURE_HEADERS else SIGNATURE_HEADERS

    def _verify_hmac(self, request: IngestRequest, secret: str) -> None:
        names = self._signature_headers()
        found = next(((name, request.headers[name]) for name in names if request.headers.get(name)), None)
        if found is None:
            raise SignatureError(f"missing signature header {names[0]}", field=names[0])
        header, signature = found
        message = request.body
        timestamp = request.headers.get(self.config.timestamp_header)
        if timestamp is not None:
            self._check_timestamp(timestamp.strip(), request)
            message = timestamp.strip().encode() + b":" + request.body
        expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        require_signature(constant_time_equal(signature.strip().lower(), expected), header)

    def _check_timestamp(self, raw: str, request: IngestRequest) -> None:
        name = self.config.timestamp_header
        if not raw.isascii() or not raw.isdigit() or len(raw) > 12:  # int() refuses ²³ and 4300+ digits
            raise SignatureError(f"{name} must be Unix seconds", field=name)
        skew = abs(request.received_at.timestamp() - int(raw))
        if skew > self.config.max_skew_seconds:
            raise SignatureError(
                f"{name} is {int(skew)}s away from now (allowed: {self.config.max_skew_seconds}s); replay refused",
                field=name,
            )
