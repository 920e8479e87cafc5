from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from responder import logs

SECRET = "s3cr3t-token-value"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    logs.configure_logging("DEBUG", stream=buf, secrets=lambda: [SECRET, "short"])
    yield buf
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(buf: io.StringIO) -> list[dict[str, Any]]:
    text = buf.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_structlog_and_stdlib_lines_are_json_with_bound_ids(stream: io.StringIO) -> None:
    logs.bind(incident_id="42", event_id="ev_1", rule_id=None)
    logs.get_logger("responder.engine").info("rule matched", rule="disk", count=3)
    logging.getLogger("aiohttp.access").warning("GET /healthz %s", 200)

    ours, theirs = lines(stream)
    assert ours["event"] == "rule matched"
    assert ours["level"] == "info"
    assert ours["logger"] == "responder.engine"
    assert (ours["rule"], ours["count"]) == ("disk", 3)
    assert theirs["event"] == "GET /healthz 200"
    assert theirs["level"] == "warning"
    assert theirs["logger"] == "aiohttp.access"
    for line in (ours, theirs):
        assert (line["incident_id"], line["event_id"]) == ("42", "ev_1")
        assert "rule_id" not in line
        assert line["timestamp"].endswith("Z")
    assert list(ours)[:4] == ["timestamp", "level", "logger", "event"]


def test_unbind_removes_ids(stream: io.StringIO) -> None:
    logs.bind(incident_id="42", run_id="r1")
    logs.unbind("incident_id")
    logs.get_logger("t").info("after")
    (line,) = lines(stream)
    assert "incident_id" not in line
    assert line["run_id"] == "r1"


def test_secret_values_are_redacted_in_fields_message_and_exception(stream: io.StringIO) -> None:
    log = logs.get_logger("responder.actions")
    log.info(f"calling with {SECRET}", url=f"https://x/?k={SECRET}", nested={"a": [f"in {SECRET} list"]}, word="short")
    try:
        raise RuntimeError(f"boom {SECRET}")
    except RuntimeError:
        log.exception("step failed")
    logging.getLogger("slack_sdk").error("stdlib saw %s", SECRET, exc_info=ValueError(SECRET))

    assert SECRET not in stream.getvalue()
    first, second, third = lines(stream)
    assert first["event"] == "calling with ***"
    assert first["url"] == "https://x/?k=***"
    assert first["nested"] == {"a": ["in *** list"]}
    assert first["word"] == "short"  # secrets shorter than 6 characters are not redacted
    assert "RuntimeError: boom ***" in second["exception"]
    assert second["level"] == "error"
    assert third["event"] == "stdlib saw ***"
    assert third["exception"] == "ValueError: ***"


def test_secret_looking_keys_are_masked(stream: io.StringIO) -> None:
    logs.get_logger("t").info(
        "config",
        token="abc",
        slack_signing_secret="xyz",
        routing_key="R0",
        sentry_dsn="http://k@h/1",
        headers={"Authorization": "Bearer abc", "Accept": "*/*"},
        api_key=None,
    )
    (line,) = lines(stream)
    assert line["token"] == line["slack_signing_secret"] == line["routing_key"] == line["sentry_dsn"] == "***"
    assert line["headers"] == {"Authorization": "***", "Accept": "*/*"}
    assert line["api_key"] is None


def test_reserved_record_names_do_not_break_logging(stream: io.StringIO) -> None:
    logs.get_logger("t").info("probe", name="http-check", module="x")
    (line,) = lines(stream)
    assert (line["name_"], line["module_"]) == ("http-check", "x")


def test_level_filters_and_reconfiguring_replaces_the_handler(stream: io.StringIO) -> None:
    other = io.StringIO()
    logs.configure_logging("WARNING", stream=other)
    logs.configure_logging("WARNING", stream=other)
    assert [h.get_name() for h in logging.getLogger().handlers].count("responder.logs") == 1
    log = logs.get_logger("t")
    log.info("dropped")
    log.warning("kept")
    assert stream.getvalue() == ""
    assert [line["event"] for line in lines(other)] == ["kept"]


def test_redact_text() -> None:
    assert logs.redact_text("a s3cr3t-token-value b", [SECRET, "", "ab"]) == "a *** b"
    # the longer secret wins when one contains the other
    assert logs.redact_text("xx 123456789 yy", ["123456", "123456789"]) == "xx *** yy"
    assert logs.redact_text("nothing here", []) == "nothing here"


def test_redact_value_without_key_masking() -> None:
    value = {"token": "plain", "list": (SECRET, 3)}
    assert logs.redact_value(value, [SECRET], mask_keys=False) == {"token": "plain", "list": ("***", 3)}


def test_secrets_are_asked_once_per_configuration_and_on_refresh() -> None:
    buf = io.StringIO()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    asked: list[int] = []
    current = [SECRET]

    def secrets() -> list[str]:
        asked.append(1)
        return list(current)

    try:
        logs.configure_logging("INFO", stream=buf, secrets=secrets)
        log = logs.get_logger("t")
        for _ in range(3):
            log.info(f"with {SECRET}")
        assert len(asked) == 1
        current[:] = ["0th3r-s3cr3t"]
        logs.refresh_secrets()  # a reloaded configuration: asked again on the next line
        log.info("with 0th3r-s3cr3t")
        assert len(asked) == 2
        assert [line["event"] for line in lines(buf)] == ["with ***"] * 4
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)
