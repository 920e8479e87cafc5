"""No configured secret shows up anywhere it could be read back: API responses (incidents, timelines, playbook
runs with what each step sent, postmortems, silences, probes, audit, status page, metrics), error bodies, captured
logs, or anything stored in Redis — across a run that hits errors (a playbook step whose far end echoes the
credentials it was sent, wrong tokens, bad signatures, a token pasted into a URL)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
import structlog

from responder.config.loader import secret_values
from responder.logs import configure_logging
from tests.fuzz.world import (
    HTTP_CREDENTIAL,
    READ_TOKEN,
    SECRETS,
    SENTRY_SECRET,
    SLACK_SIGNING_SECRET,
    WRITE_TOKEN,
    LiveApp,
    live_world,
)

READ = ("Authorization", f"Bearer {READ_TOKEN}")
WRITE = ("Authorization", f"Bearer {WRITE_TOKEN}")
JSON = ("Content-Type", "application/json")


@pytest.fixture(scope="module")
def logged(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveApp, io.StringIO]]:
    """A live world whose logs (every level) go through responder's JSON logging into a buffer."""
    buffer = io.StringIO()
    root = logging.getLogger()
    level = root.level
    worlds = live_world(Path(tmp_path_factory.mktemp("world")), redis_server)
    live = next(worlds)
    configure_logging("DEBUG", stream=buffer, secrets=lambda: secret_values(live.loaded.config))
    try:
        yield live, buffer
    finally:
        for handler in [h for h in root.handlers if h.get_name() == "responder.logs"]:
            root.removeHandler(handler)
        root.setLevel(level)
        structlog.reset_defaults()
        next(worlds, None)


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def redis_dump(live: LiveApp) -> str:
    client = sync_redis.Redis.from_url(live.redis_url, decode_responses=True)
    out: list[Any] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "string":
            out.append(client.get(key))
        elif kind == "hash":
            out.append(client.hgetall(key))
        elif kind == "list":
            out.append(client.lrange(key, 0, -1))
        elif kind == "set":
            out.append(sorted(client.smembers(key)))
        elif kind == "zset":
            out.append(client.zrange(key, 0, -1, withscores=True))
        elif kind == "stream":
            out.append(client.xrange(key))
        out.append(key)
    client.close()
    return json.dumps(out, default=str)


def test_no_secret_is_readable_back(logged: tuple[LiveApp, io.StringIO]) -> None:
    live, logs = logged
    incident = live.seed_incident()  # its playbook's second step fails, and the far end echoes the credentials
    assert any(HTTP_CREDENTIAL in str(r["headers"]) for r in live.sink.requests)  # the step did send it

    replies = []
    # errors, some of which quote what was sent
    for method, path, headers, body in [
        ("GET", f"/api/v1/incidents/{WRITE_TOKEN}", [READ], None),  # a token pasted into the URL
        ("GET", f"/api/v1/silences/{SENTRY_SECRET}", [READ], None),
        ("GET", f"/api/v1/probes/{SLACK_SIGNING_SECRET}", [READ], None),
        ("POST", f"/hooks/{HTTP_CREDENTIAL}", [JSON], b"{}"),
        ("GET", "/api/v1/incidents", [("Authorization", f"Bearer {WRITE_TOKEN}x")], None),
        ("POST", "/api/v1/incidents/1/ack", [READ, JSON], b"{}"),
        ("POST", "/hooks/sentry", [JSON, ("Sentry-Hook-Signature", SENTRY_SECRET)], b"{}"),
        ("POST", "/api/v1/silences", [WRITE, JSON], json.dumps({"matchers": "service=api", "duration": "1h",
                                                                 WRITE_TOKEN: 1}).encode()),
        ("GET", f"/api/v1/incidents?state={READ_TOKEN}", [READ], None),
        ("POST", f"/api/v1/incidents/{incident}/run", [WRITE, JSON], json.dumps({"playbook": WRITE_TOKEN}).encode()),
    ]:
        reply = live.request(method, path, body=body, headers=headers)
        assert 400 <= reply.status < 500, (path, reply)
        replies.append(reply)
    # a second run of the failing playbook, by hand
    run = live.request("POST", f"/api/v1/incidents/{incident}/run", body=b'{"playbook": "notify"}',
                       headers=[WRITE, JSON])
    assert run.status == 202, run
    live.call(live.services.runner.drain())

    # everything the API and the public pages give back
    for path in ["/api/v1/incidents", f"/api/v1/incidents/{incident}", f"/api/v1/incidents/{incident}/postmortem.md",
                 "/api/v1/silences?state=all", "/api/v1/silences/weekly-maintenance", "/api/v1/probes",
                 "/api/v1/probes/api-health", "/api/v1/audit", "/api/v1/openapi.json", "/status", "/status.json",
                 "/metrics", "/readyz", f"/ui/incidents/{incident}", "/ui/incidents", "/ui/silences", "/ui/probes"]:
        reply = live.request("GET", path, headers=[READ])
        assert reply.status == 200, (path, reply)
        replies.append(reply)
    detail = live.request("GET", f"/api/v1/incidents/{incident}", headers=[READ]).json()
    timeline = json.dumps(detail["timeline"])
    assert "HTTP 500" in timeline and "***" in timeline  # the failure is told, the echoed credential is masked

    for reply in replies:
        assert not leaks(reply.body.decode(errors="replace")), reply
        assert not leaks(json.dumps(reply.headers)), reply
    assert "webhook" in logs.getvalue() or "step" in logs.getvalue()  # the logs were captured
    assert not leaks(logs.getvalue()), [line for line in logs.getvalue().splitlines() if leaks(line)][:3]
    assert not leaks(redis_dump(live))
