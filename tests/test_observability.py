from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
import structlog
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from responder import logs
from responder.observability import init_sentry, report_exception, shutdown_sentry
from tests.fakes.sentry import FakeSentry

SECRET = "s3cr3t-token-value"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    logs.configure_logging("INFO", stream=buf, secrets=lambda: [SECRET])
    yield buf
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def fake(log_stream: io.StringIO) -> Iterator[FakeSentry]:
    with FakeSentry() as server:
        yield server
        # Whatever the test did, leave no client (nor its worker thread) and no breadcrumbs behind.
        shutdown_sentry(timeout=0)
        sentry_sdk.get_isolation_scope().clear()
        sentry_sdk.get_current_scope().clear()
    assert not sentry_sdk.is_initialized()


def assert_no_secret(fake: FakeSentry) -> None:
    assert fake.bodies
    for body in fake.bodies:
        assert SECRET.encode() not in body


def exception_values(event: dict[str, Any]) -> list[str]:
    return [v["value"] for v in event["exception"]["values"]]


async def test_report_exception_sends_one_tagged_scrubbed_event(fake: FakeSentry, log_stream: io.StringIO) -> None:
    assert init_sentry(fake.dsn, environment="test", secrets=lambda: [SECRET])
    report_exception(RuntimeError(f"boom with {SECRET}"), incident_id="42", event_id="ev_1", rule="disk")
    shutdown_sentry()

    assert len(fake.events) == 1
    (event,) = fake.errors()
    assert event["tags"]["incident_id"] == "42"
    assert event["tags"]["event_id"] == "ev_1"
    assert event["tags"]["rule"] == "disk"
    assert event["environment"] == "test"
    assert exception_values(event) == ["boom with ***"]
    assert_no_secret(fake)
    assert any(b"boom with ***" in body for body in fake.bodies)  # the bodies were decoded, not gzip
    (line,) = [json.loads(x) for x in log_stream.getvalue().splitlines()]
    assert line["level"] == "error"
    assert line["incident_id"] == "42"
    assert line["sentry_event_id"] == event["event_id"]
    assert "RuntimeError: boom with ***" in line["exception"]


async def test_error_logs_are_breadcrumbs_not_events(fake: FakeSentry) -> None:
    init_sentry(fake.dsn, secrets=lambda: [SECRET])
    logs.get_logger("responder.probes").error("probe failed", probe="http", detail=f"token {SECRET}")
    logging.getLogger("slack_sdk").error("slack call failed", exc_info=ValueError("x"))
    report_exception(ValueError("the only event"))
    shutdown_sentry()

    (event,) = fake.events
    assert exception_values(event) == ["the only event"]
    crumbs = {c["message"]: c for c in event["breadcrumbs"]["values"]}
    assert crumbs["probe failed"]["data"] == {"probe": "http", "detail": "token ***"}
    assert crumbs["slack call failed"]["level"] == "error"
    assert_no_secret(fake)


async def test_tags_do_not_leak_into_later_events(fake: FakeSentry) -> None:
    init_sentry(fake.dsn)
    report_exception(RuntimeError("first"), incident_id="42")
    sentry_sdk.capture_message("later", level="error")
    shutdown_sentry()

    first, later = fake.events
    assert first["tags"] == {"incident_id": "42"}
    assert "incident_id" not in later.get("tags", {})


async def test_aiohttp_handler_error_drops_credentials_and_signatures(
    fake: FakeSentry, aiohttp_client: AiohttpClient
) -> None:
    init_sentry(fake.dsn, secrets=lambda: [SECRET])

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError(f"handler saw {request.headers['X-Note']}")

    app = web.Application()
    app.router.add_post("/hooks/{source}", crash)
    client = await aiohttp_client(app)
    headers = {
        "Authorization": f"Bearer {SECRET}",
        "Cookie": "session=abc",
        "Sentry-Hook-Signature": "aa11",
        "X-Slack-Signature": "v0=bb22",
        "X-PagerDuty-Signature": "v1=cc33",
        "X-Grafana-Alerting-Signature": "dd44",
        "X-Note": f"note {SECRET}",
    }
    resp = await client.post("/hooks/sentry", data=b"{}", headers=headers)
    assert resp.status == 500
    shutdown_sentry()

    (event,) = fake.events
    assert event["transaction"] == "POST /hooks/{source}"
    assert exception_values(event) == ["handler saw note ***"]
    sent = {k.lower(): v for k, v in event["request"]["headers"].items()}
    assert sent["x-note"] == "note ***"
    for name in headers:
        if name != "X-Note":
            assert name.lower() not in sent
    assert_no_secret(fake)


async def test_crashed_task_is_reported_once(fake: FakeSentry) -> None:
    init_sentry(fake.dsn)

    async def consumer() -> None:
        raise RuntimeError("consumer died")

    task = asyncio.get_running_loop().create_task(consumer())
    with pytest.raises(RuntimeError):
        await task
    shutdown_sentry()

    (event,) = fake.events
    assert event["exception"]["values"][0]["mechanism"]["type"] == "asyncio"


async def test_off_without_dsn(log_stream: io.StringIO) -> None:
    assert init_sentry("") is False
    assert not sentry_sdk.is_initialized()
    report_exception(RuntimeError("only logged"), incident_id="7")
    shutdown_sentry()
    (line,) = [json.loads(x) for x in log_stream.getvalue().splitlines()]
    assert line["incident_id"] == "7"
    assert line["sentry_event_id"] is None


def test_init_outside_running_loop_is_refused() -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        init_sentry("http://public@127.0.0.1:9/1")
    assert not sentry_sdk.is_initialized()
