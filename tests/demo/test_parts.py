"""The demo's parts on their own: its Sentry payload has the real webhook's shape and parses as the rule
expects; its runbook is the bundled one with shorter durations; the Slack stand-in speaks slack-sdk."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from responder.config.loader import bundled_config_path, load_config
from responder.demo.config import Timing, write_config
from responder.demo.sentry import metric_alert
from responder.demo.standins.slack import SlackStandIn
from responder.ingest.base import IngestRequest
from responder.ingest.sentry import SentryAdapter, SentryConfig
from tests.conftest import PAYLOADS


def _shape(value: Any, path: str = "") -> set[str]:
    if isinstance(value, dict):
        return {p for k, v in value.items() for p in _shape(v, f"{path}.{k}")} | {path}
    if isinstance(value, list):
        return {p for v in value for p in _shape(v, f"{path}[]")} | {path}
    return {path}


def test_the_demo_metric_alert_has_the_sentry_webhook_shape_and_parses_like_it() -> None:
    now = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    for action, sample in (("critical", "metric_alert_error_rate_critical.json"),
                           ("resolved", "metric_alert_error_rate_resolved.json")):
        body = metric_alert(action, rate=0.4, identifier=64, started=now, now=now, window_seconds=10)
        real = json.loads((PAYLOADS / "sentry" / sample).read_text())
        assert _shape(body) == _shape(real)
        request = IngestRequest(body=json.dumps(body).encode(), headers={"Sentry-Hook-Resource": "metric_alert"})
        [event] = SentryAdapter(SentryConfig()).parse(request)
        assert (event.name, event.service, event.status.value) == \
            ("api error rate", "api", "firing" if action == "critical" else "resolved")
        assert event.value == 0.4


def test_the_demo_runbook_is_the_bundled_one_with_compressed_durations(tmp_path: Path) -> None:
    env = {name: "x" for name in ("SENTRY_CLIENT_SECRET", "RAILWAY_TOKEN", "RAILWAY_PROJECT_ID", "RAILWAY_URL",
                                  "SLACK_BOT_TOKEN", "SLACK_URL", "PAGERDUTY_ROUTING_KEY", "STATUSPAGE_API_KEY",
                                  "STATUSPAGE_PAGE_ID")}
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    env.update(RAILWAY_URL="http://127.0.0.1:1/graphql/v2", SLACK_URL="http://127.0.0.1:1/api/",
               STATUSPAGE_URL="http://127.0.0.1:1", PAGERDUTY_URL="https://127.0.0.1:1", PAGERDUTY_CA_FILE=str(ca),
               API_HEALTH_URL="http://127.0.0.1:1/health")
    demo = load_config(write_config(tmp_path / "demo", port=8080, timing=Timing()), env=env)
    bundled = load_config(bundled_config_path(), env={"API_HEALTH_URL": "http://127.0.0.1:1/health"})

    def structure(book: Any) -> list[tuple[str, str]]:
        return [(s.name, s.action) for s in book.all_steps()]

    assert demo.playbooks.keys() == bundled.playbooks.keys()
    for name, book in bundled.playbooks.items():
        assert structure(demo.playbooks[name]) == structure(book)
    steps = {s.name: s for s in demo.playbooks["rollback-api"].all_steps()}
    assert steps["settle"].with_ == {"duration": "2s"}
    assert (steps["verify"].with_["within"], steps["verify"].with_["interval"]) == ("5s", "1s")
    assert [r.id for r in demo.rules] == [r.id for r in bundled.rules]
    assert list(demo.probes) == ["api-health"] and demo.probes["api-health"].every.total_seconds() == 1
    assert demo.disabled_probes == {}
    # every provider the runbook uses is configured (the real code paths run against the stand-ins)
    cfg = demo.config.providers
    assert all(p.has_credentials() for p in (cfg.railway, cfg.slack, cfg.pagerduty, cfg.statuspage))
    assert demo.config.redis.url is None  # the embedded store


async def test_the_slack_stand_in_speaks_slack_sdk() -> None:
    async with SlackStandIn(token="xoxb-demo") as slack, aiohttp.ClientSession() as session:
        client = AsyncWebClient(token="xoxb-demo", base_url=slack.api_url, session=session)
        posted = await client.chat_postMessage(channel="#incidents", text="hello", blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}])
        await client.chat_postMessage(channel=posted["channel"], thread_ts=posted["ts"], text="a reply")
        await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="hello again")
        link = await client.chat_getPermalink(channel=posted["channel"], message_ts=posted["ts"])
        [message] = slack.top_level()
        assert (message.text, message.edits, message.history) == ("hello again", 1, ["hello"])
        assert [m.text for m in slack.thread(message)] == ["a reply"]
        assert link["permalink"].endswith(posted["ts"].replace(".", ""))
        bad = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url, session=session)
        try:
            await bad.chat_postMessage(channel="#incidents", text="nope")
        except Exception as exc:
            assert "invalid_auth" in str(exc)
        else:
            raise AssertionError("a wrong token was accepted")
