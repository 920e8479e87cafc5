"""Record and replay: the daemon appends each handled event to JSONL; `responder replay` runs a capture through the
rules on a virtual clock in dry-run and says what would have happened."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from responder.cli import main
from responder.config.loader import load_config
from responder.events import Event, EventStatus, fingerprint
from responder.replay import read_capture, render
from responder.replay import replay as run_replay
from tests.conftest import PAYLOADS

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = ROOT / "examples" / "captures" / "bad-deploy.jsonl"
CONFIG = str(ROOT / "responder.yaml")


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["replay", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_replaying_the_shipped_capture_prints_the_counts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = replay(capsys, str(CAPTURE), "--config", CONFIG)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"replayed 187 events from {CAPTURE} (probe 180, sentry 5, uptimerobot 2)"
    assert lines[1].startswith("  2024-11-21 09:00:00 -> 09:59:30 UTC: 59m30s of virtual time in ")
    assert ("would have: rolled back api 2 times, restarted sync-worker 1 time, paged 1 time, posted to Slack 4 times, "
            "updated the status page 10 times, updated Statuspage 6 times") in out
    assert "only if a step had failed: paged 6 times, replied in Slack 2 times" in out
    assert "note: pagerduty, railway, slack, statuspage are not configured" in out
    # per rule
    assert "  api-error-rate       fired 2 times, resolved 2 times; incidents #1 #4: rolled back api 2 times" in out
    assert ("  api-health-failing   fired 1 time, pending 2 times (1 cleared before firing), resolved 1 time; "
            "incidents #3: restarted sync-worker 1 time") in out
    assert "  uptime-monitor-down  fired 1 time, resolved 1 time; incidents #2: paged 1 time" in out
    # per incident
    assert "  #1 api-error-rate [critical] Error rate above 5% in Sentry for the API (service=api)" in out
    assert "      09:13:08 -> 09:24:44 (11m36s, rule:api-error-rate)" in out
    assert "  #4 api-error-rate [critical] Error rate above 5% in Sentry for the API (service=api)" in out
    assert "      09:17:00 -> 09:20:00 (3m, rule:api-health-failing)" in out
    # the progress bar on stderr (a line per quarter when stderr is not a terminal)
    assert err.splitlines()[-1] == "replaying [##############################] 100% 187/187 events 09:59:30"


def test_from_and_to_replay_a_slice(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = replay(capsys, str(CAPTURE), "--config", CONFIG, "--from", "30m", "--to", "2024-11-21T10:00:00Z",
                          "--no-progress")
    assert code == 0
    assert "  2024-11-21 09:30:00 -> 10:00:00 UTC: 30m of virtual time" in out
    assert "would have: rolled back api 1 time, posted to Slack 1 time" in out
    assert "#1 api-error-rate" in out and "#2" not in out
    assert "api-health-failing   pending 1 time (1 cleared before firing)" in out


def test_rules_from_another_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rules.yaml").write_text("rules:\n  - {id: any-probe-failing, match: {source: probe}, "
                                         "when: {status: failing}, group_by: [name], severity: warning}\n")
    code, out, _ = replay(capsys, str(CAPTURE), "--config", CONFIG, "--rules", str(tmp_path), "--to", "30m",
                          "--no-progress")
    assert code == 0
    assert "would have: done nothing" in out
    assert "any-probe-failing  fired 2 times, resolved 2 times; incidents #1 #2" in out
    assert "api-error-rate" not in out


def _sentry(when: datetime, action: str, identifier: str) -> Event:
    labels = {"project": "api", "environment": "production", "alert_rule_id": "318"}
    return Event(source="sentry", name="api error rate", service="api",
                 status=EventStatus.RESOLVED if action == "resolved" else EventStatus.FIRING,
                 value=0.09 if action == "critical" else 0.01, labels=labels,
                 fingerprint=fingerprint("sentry", "api error rate", labels), occurred_at=when, received_at=when,
                 delivery_id=f"sentry:metric:1:{identifier}:{action}")


def test_a_second_rollback_inside_the_budget_is_said_to_be_refused(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    start = datetime(2025, 5, 1, 14, 0, tzinfo=UTC)
    events = [_sentry(start, "critical", "1"), _sentry(start + timedelta(minutes=5), "resolved", "1"),
              _sentry(start + timedelta(minutes=12), "critical", "2"),
              _sentry(start + timedelta(minutes=20), "resolved", "2")]
    capture = tmp_path / "two.jsonl"
    capture.write_text("".join(e.model_dump_json() + "\n" for e in events) + "{not json\n"
                       + events[0].model_dump_json() + "\n")
    code, out, _ = replay(capsys, str(capture), "--config", CONFIG, "--no-progress")
    assert code == 0
    assert "would have: rolled back api 2 times" in out
    assert ("  of which rolled back api 1 time would have been refused (over automation.budgets.rollback: at most 1 "
            "per 30m for railway:api@production)") in out
    assert "1 repeated deliveries skipped" in out
    assert f"skipped {capture}:5: not an event" in out


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay(capsys, str(tmp_path / "none.jsonl"))[0] == 1
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert replay(capsys, str(empty))[0] == 1
    code, _, err = replay(capsys, str(CAPTURE), "--from", "yesterday")
    assert code == 2 and "--from/--to" in err


async def test_the_daemon_records_what_it_handled_and_replay_reads_it(make_config: Any, make_app: Any,
                                                                      tmp_path: Path) -> None:
    files = {f"{folder}/runbook.yaml": (ROOT / folder / "runbook.yaml").read_text()
             for folder in ("rules", "playbooks", "probes")}
    loaded = make_config({"responder.yaml": "record: {path: capture/events.jsonl}\n"
                                            "status_page: {components: [{id: api, name: API}, {id: workers, name: W},"
                                            " {id: web, name: Web}]}\n", **files})
    (tmp_path / "capture").mkdir()
    client, services = await make_app(loaded)
    for name in ("metric_alert_error_rate_critical.json", "metric_alert_error_rate_resolved.json"):
        response = await client.post("/hooks/sentry", data=(PAYLOADS / "sentry" / name).read_bytes(),
                                     headers={"Content-Type": "application/json",
                                              "Sentry-Hook-Resource": "metric_alert"})
        assert response.status == 202
        await services.consumer.poll(block_ms=100)
        await services.runner.drain()

    recorded = tmp_path / "capture" / "events.jsonl"
    lines = recorded.read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["firing", "resolved"]
    assert services.consumer.recorder is not None and services.consumer.recorder.written == 2
    assert len(read_capture(recorded).events) == 2

    report = await run_replay(load_config(tmp_path / "responder.yaml", env={}), read_capture(recorded), "events.jsonl")
    out = render(report)
    assert "would have: rolled back api 1 time" in out
    assert "#1 api-error-rate" in out


def test_recording_is_off_by_default_and_survives_an_unwritable_path(tmp_path: Path) -> None:
    from responder.engine.recorder import EventRecorder, RecordConfig

    assert EventRecorder.from_config(RecordConfig(), tmp_path) is None
    recorder = EventRecorder.from_config(RecordConfig(path="missing/dir/events.jsonl"), tmp_path)
    assert recorder is not None
    recorder.write(_sentry(datetime(2025, 1, 1, tzinfo=UTC), "critical", "1"))
    assert recorder.failed == 1 and recorder.written == 0
