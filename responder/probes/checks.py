"""Run one probe's check once: HTTP, TCP, Redis (PING and a key's length), TLS expiry, DNS.

Every check is bounded by the probe's own timeout and never raises: a refused connection, a wrong
answer or a bug all become a failing CheckResult with the reason. `answered` is False when nothing
replied at all (refused, timed out), which the playbook `verify` step reports as inconclusive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from responder.probes.model import DnsCheck, HttpCheck, Probe, RedisCheck, TcpCheck, TlsCheck
from responder.store.probes import WatchedRedisError, read_watched_redis

__all__ = ["CheckResult", "certificate_not_after", "http_check", "json_path", "run_check"]

_MAX_BODY = 1024 * 1024  # a health document is small; more is not read
_MISSING = object()


@dataclass(frozen=True)
class CheckResult:
    """One run: ok or not, the measured value (latency ms, length, days left) and why."""

    ok: bool
    reason: str
    value: float | None = None
    latency_ms: float | None = None
    answered: bool = True


@dataclass(frozen=True)
class _Context:
    session: aiohttp.ClientSession
    now: datetime
    timeout: float


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _error(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text}"[:300] if text else exc.__class__.__name__


def json_path(doc: Any, path: str) -> Any:
    """`checks.database` or `items.0.status` in a parsed JSON document; a sentinel when absent."""
    current = doc
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, str) and not isinstance(actual, str):  # `code: "200"` vs 200, "true" vs true
        return (str(actual).lower() if isinstance(actual, bool) else str(actual)) == expected
    if isinstance(expected, bool) or isinstance(actual, bool):  # true is not 1
        return actual is expected
    return bool(actual == expected)


def _judge_http(check: HttpCheck, status: int, body: bytes, latency: float) -> CheckResult:
    expect = check.expect
    accepted = (status in expect.status) if expect.status else 200 <= status < 300
    if not accepted:
        wanted = ", ".join(map(str, expect.status)) or "2xx"
        return CheckResult(False, f"HTTP {status} (expected {wanted})", latency, latency)
    text = body.decode(errors="replace")
    if expect.body_contains is not None and expect.body_contains not in text:
        return CheckResult(False, f"body does not contain {expect.body_contains!r}", latency, latency)
    if expect.json_:
        try:
            doc = json.loads(text)
        except ValueError:
            return CheckResult(False, f"HTTP {status} but the body is not JSON", latency, latency)
        for path, expected in expect.json_.items():
            actual = json_path(doc, path)
            if actual is _MISSING:
                return CheckResult(False, f"{path} is missing (expected {expected!r})", latency, latency)
            if not _same(actual, expected):
                return CheckResult(False, f"{path} is {actual!r} (expected {expected!r})", latency, latency)
    if check.max_latency is not None and latency > check.max_latency.total_seconds() * 1000:
        limit = round(check.max_latency.total_seconds() * 1000)
        return CheckResult(False, f"slow: HTTP {status} in {latency:g} ms (max {limit} ms)", latency, latency)
    return CheckResult(True, f"HTTP {status} in {latency:g} ms", latency, latency)


async def _http(check: HttpCheck, ctx: _Context) -> CheckResult:
    assert check.url is not None
    started = time.perf_counter()
    try:
        async with ctx.session.request(check.method, check.url, headers=check.headers, data=check.body,
                                       allow_redirects=check.follow_redirects, ssl=check.verify_tls,
                                       timeout=aiohttp.ClientTimeout(total=ctx.timeout)) as response:
            body = await response.content.read(_MAX_BODY)
            status = response.status
    except aiohttp.ClientError as exc:
        return CheckResult(False, _error(exc), None, _ms(started), answered=False)
    return _judge_http(check, status, body, _ms(started))


async def http_check(check: HttpCheck, session: aiohttp.ClientSession, limit: float) -> CheckResult:
    """One HTTP check outside a probe's schedule (the playbook `verify` step); `limit` is in seconds."""
    started = time.perf_counter()
    try:
        return await _http(check, _Context(session, datetime.now(UTC), limit))
    except TimeoutError:
        return CheckResult(False, f"no answer within {limit:g}s", None, _ms(started), answered=False)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(1):
            await writer.wait_closed()


async def _tcp(check: TcpCheck, ctx: _Context) -> CheckResult:
    assert check.host is not None
    started = time.perf_counter()
    try:
        _, writer = await asyncio.open_connection(check.host, check.port)
    except OSError as exc:
        return CheckResult(False, f"cannot connect to {check.host}:{check.port}: {_error(exc)}", None, _ms(started),
                           answered=False)
    latency = _ms(started)
    await _close(writer)
    return CheckResult(True, f"connected to {check.host}:{check.port} in {latency:g} ms", latency, latency)


async def _redis(check: RedisCheck, ctx: _Context) -> CheckResult:
    assert check.url is not None
    started = time.perf_counter()
    try:
        reading = await read_watched_redis(check.url, check.length_of, ctx.timeout)
    except (WatchedRedisError, OSError) as exc:
        answered = isinstance(exc, WatchedRedisError) and "Connection" not in str(exc)
        return CheckResult(False, str(exc) if isinstance(exc, WatchedRedisError) else _error(exc), None,
                           _ms(started), answered=answered)
    latency = round(reading.latency_ms, 1)
    if reading.length is None:
        return CheckResult(True, f"PONG in {latency:g} ms", latency, latency)
    length, key = reading.length, check.length_of
    kind = "missing, counted as 0" if reading.kind == "none" else reading.kind
    if check.max is not None and length > check.max:
        return CheckResult(False, f"{key} has {length} entries (max {check.max})", length, latency)
    if check.min is not None and length < check.min:
        return CheckResult(False, f"{key} has {length} entries (min {check.min})", length, latency)
    return CheckResult(True, f"{key} has {length} entries ({kind})", length, latency)


def _der(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `at`."""
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[at:at + count], "big")
        at += count
    return tag, at, at + length


def certificate_not_after(der: bytes) -> datetime:
    """notAfter of a DER X.509 certificate (no verification needed, no dependency)."""
    _, cert, _ = _der(der, 0)  # Certificate
    _, at, _ = _der(der, cert)  # tbsCertificate
    tag, _, end = _der(der, at)
    if tag == 0xA0:  # [0] version
        at = end
    for _skipped in ("serialNumber", "signature", "issuer"):
        at = _der(der, at)[2]
    _, validity, _ = _der(der, at)
    not_before_end = _der(der, validity)[2]
    tag, start, end = _der(der, not_before_end)  # notAfter: UTCTime or GeneralizedTime
    fmt = "%y%m%d%H%M%SZ" if tag == 0x17 else "%Y%m%d%H%M%SZ"
    return datetime.strptime(der[start:end].decode(), fmt).replace(tzinfo=UTC)


async def _peer_certificate(host: str, port: int, server_name: str, context: ssl.SSLContext) -> tuple[bytes, float]:
    started = time.perf_counter()
    _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=server_name)
    latency = _ms(started)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    finally:
        await _close(writer)
    if not der:
        raise ssl.SSLError("the server sent no certificate")
    return der, latency


async def _tls(check: TlsCheck, ctx: _Context) -> CheckResult:
    assert check.host is not None
    name = check.server_name or check.host
    untrusted = ""
    try:
        if check.verify:
            context = ssl.create_default_context(cafile=check.ca_file)
            try:
                der, latency = await _peer_certificate(check.host, check.port, name, context)
            except ssl.SSLCertVerificationError as exc:
                untrusted = f"certificate not trusted: {exc.verify_message or exc.reason}"
        if untrusted or not check.verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            der, latency = await _peer_certificate(check.host, check.port, name, context)
    except (OSError, ValueError) as exc:
        return CheckResult(False, f"TLS to {check.host}:{check.port}: {_error(exc)}", answered=False)
    days = round((certificate_not_after(der) - ctx.now).total_seconds() / 86400, 2)
    if untrusted:
        return CheckResult(False, f"{untrusted} (expires in {days:g} days)", days, latency)
    if days < check.min_days:
        verb = "expired" if days < 0 else "expires in"
        when = f"{-days:g} days ago" if days < 0 else f"{days:g} days"
        return CheckResult(False, f"certificate {verb} {when} (min {check.min_days:g})", days, latency)
    return CheckResult(True, f"certificate valid for {days:g} more days", days, latency)


async def _dns(check: DnsCheck, ctx: _Context) -> CheckResult:
    assert check.name is not None
    family = socket.AF_INET if check.record == "A" else socket.AF_INET6
    started = time.perf_counter()
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(check.name, None, family=family,
                                                            type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return CheckResult(False, f"{check.name} {check.record}: {exc.strerror or exc}", None, _ms(started),
                           answered=exc.errno != socket.EAI_AGAIN)
    latency = _ms(started)
    addresses = sorted({str(info[4][0]) for info in infos})
    missing = [a for a in check.expect if a not in addresses]
    if missing:
        return CheckResult(False, f"{check.name} {check.record} is {', '.join(addresses)} (expected "
                                  f"{', '.join(missing)})", latency, latency)
    return CheckResult(True, f"{check.name} {check.record} {', '.join(addresses)} in {latency:g} ms", latency,
                       latency)


_CHECKS: dict[str, Callable[[Any, _Context], Awaitable[CheckResult]]] = {
    "http": _http, "tcp": _tcp, "redis": _redis, "tls": _tls, "dns": _dns,
}


async def run_check(probe: Probe, session: aiohttp.ClientSession, now: datetime) -> CheckResult:
    """Run `probe` once within its timeout; never raises (except cancellation)."""
    timeout = probe.deadline
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            return await _CHECKS[probe.kind](probe.check, _Context(session, now, timeout))
    except TimeoutError:
        return CheckResult(False, f"no answer within {timeout:g}s", None, _ms(started), answered=False)
    except Exception as exc:  # a bug or an odd answer must not stop the schedule
        return CheckResult(False, f"probe error: {_error(exc)}", None, _ms(started), answered=False)
