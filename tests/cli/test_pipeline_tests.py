"""`responder test`: the bundled rules pass their tests; a broken expectation prints a diff and exits 1; problems in
a test file are named file:line; the virtual clock fires timers (for, quiet) without sleeping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from responder.cli import main
from responder.config.loader import load_config
from tests.conftest import PAYLOADS, write_config

ROOT = Path(__file__).resolve().parents[2]

RULES = """
rules:
  - id: latency
    match: {source: grafana, name: HighLatency}
    when: {value: "> 2"}
    for: 2m
    group_by: [service]
    severity: warning
    playbook: notify
  - id: issue
    match: {source: sentry, name: {regex: ".*TypeError.*"}}
    when: {status: firing}
    group_by: [service]
    playbook: notify
    resolve: {quiet: 2h}
  - id: burst
    match: {source: grafana, name: Errors}
    when: {value: ">= 3"}
    over: {window: 5m, count: {status: firing}}
    severity: error
"""

PLAYBOOKS = """
playbooks:
  - id: notify
    steps:
      - name: say
        action: log
        with: {message: "{{ incident.title }} at {{ event.value }}"}
      - {name: scale, action: kubernetes.scale, with: {deployment: "{{ incident.service }}", replicas: 4}}
    on_resolve:
      - {name: done, action: incident.note, with: {text: recovered}}
"""


def run(paths: list[str], capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["test", *extra, *paths])
    return code, capsys.readouterr().out


def project(tmp_path: Path, tests: str, name: str = "rules/app_test.yaml") -> Path:
    write_config(tmp_path, {"responder.yaml": "{}\n", "rules/app.yaml": RULES, "playbooks/app.yaml": PLAYBOOKS,
                            name: tests})
    return tmp_path / name


def test_bundled_rules_pass_their_tests(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run([str(ROOT / "rules")], capsys)
    assert code == 0, out
    assert "runbook_test.yaml" in out and "5 tests, 5 passed, 0 failed" in out
    assert out.count("✓") == 5 and "✗" not in out


def test_the_command_line_exits_0_on_the_bundled_rules() -> None:
    result = subprocess.run([sys.executable, "-m", "responder", "test", "rules/"], cwd=ROOT, capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "utf-8"}, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout and result.stderr == ""  # the daemon's start-up warnings stay quiet


def test_a_broken_expectation_fails_with_a_readable_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "rules" / "runbook_test.yaml").read_text()
    assert "environment: production}}" in text
    broken = text.replace("environment: production}}", "environment: staging}}", 1)
    broken = broken.replace("tests:\n", f"config: {ROOT / 'responder.yaml'}\ntests:\n", 1)
    path = tmp_path / "broken_test.yaml"
    path.write_text(broken)
    lines = broken.splitlines()
    expect = lines.index("    expect:")
    line = next(i for i, t in enumerate(lines[expect:], expect + 1) if t.strip() == "- at: 0s")

    code, out = run([str(path)], capsys)
    assert code == 1
    assert "✗ a Sentry error rate above 5% rolls the API back at once" in out
    assert f"at 0s ({path}:{line})" in out
    assert "--- expected" in out and "+++ actual" in out
    assert "-        with: {service: api, environment: staging}" in out
    assert "+        with: {service: api, environment: production}" in out
    assert "5 tests, 4 passed, 1 failed" in out


def test_an_unexpected_incident_is_shown_in_the_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project(tmp_path, """
tests:
  - name: nothing should happen
    inputs:
      - at: 0s
        event: {source: sentry, name: "TypeError: x is undefined", service: web, status: firing}
    expect:
      - {at: 1s, incidents: []}
""")
    code, out = run([str(path)], capsys)
    assert code == 1
    assert "-incidents: []" in out
    assert "+  - {id: '1', rule: issue, title: issue (service=web), status: open}" in out


def test_inputs_and_timers_on_the_virtual_clock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`for: 2m` fires at 2m without an event; `quiet: 2h` resolves at 2h; a 5m window forgets; a payload file;
    a redelivered event counts once; parameters are rendered."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "payload.json").write_bytes((PAYLOADS / "grafana" / "firing_two_alerts.json").read_bytes())
    path = project(tmp_path, """
tests:
  - name: latency held for 2 minutes
    start: 2026-03-01T12:00:00Z
    inputs:
      - at: 0s
        event: {source: grafana, name: HighLatency, service: api, status: firing, value: 2.5}
      - at: 3m
        event: {source: grafana, name: HighLatency, service: api, status: resolved}
    expect:
      - at: 1m59s
        rules: [{rule: latency, group: {service: api}, state: pending}]
        incidents: []
      - at: 2m
        rules: [{rule: latency, state: firing}]
        incidents:
          - id: "1"
            rule: latency
            severity: warning
            steps:
              - {step: say, action: log, status: dry-run, with: {message: "latency (service=api) at 2.5"}}
              - {step: scale, action: kubernetes.scale, with: {deployment: api, replicas: 4}}
      - at: 3m
        incidents:
          - rule: latency
            status: resolved
            steps: [{step: say}, {step: scale}, {step: done, phase: resolve, action: incident.note}]
  - name: a Sentry issue resolves after 2 quiet hours; a redelivery counts once
    inputs:
      - at: 0s
        event: {source: sentry, name: "TypeError: x is undefined", service: web, status: firing, delivery_id: d1}
      - at: 10m
        event: {source: sentry, name: "TypeError: x is undefined", service: web, status: firing, delivery_id: d1}
    expect:
      - at: 1h
        incidents: [{rule: issue, status: open, events: 1}]
      - at: 2h1s
        rules: [{rule: issue, state: inactive}]
        incidents: [{rule: issue, status: resolved, resolved_by: "rule:issue"}]
  - name: three errors within 5 minutes fire; the window forgets them
    inputs:
      - at: 0s
        event: {source: grafana, name: Errors, service: api, status: firing}
        every: 1m
        until: 2m
    expect:
      - at: 2m
        rules: [{rule: burst, state: firing}]
        incidents: [{rule: burst, severity: error, steps: []}]
      - at: 7m1s
        rules: [{rule: burst, state: inactive}]
        incidents: [{rule: burst, status: resolved}]
  - name: a Grafana webhook from a file
    inputs:
      - at: 0s
        webhook: {source: grafana, file: payload.json}
    expect:
      - at: 0s
        incidents: []
""")
    code, out = run([str(path)], capsys)
    assert code == 0, out
    assert "4 tests, 4 passed, 0 failed" in out


@pytest.mark.parametrize(("tests", "expected"), [
    ("tests:\n  - name: a\n    expect:\n      - {at: 0s, rules: [{rule: nope, state: firing}]}\n",
     "rules/app_test.yaml:4:33: tests.0.expect.0.rules.0.rule: unknown rule 'nope' (known: burst, issue, latency)"),
    ("tests:\n  - name: a\n    expect:\n      - {at: soon, incidents: []}\n",
     "rules/app_test.yaml:4:14: tests.0.expect.0.at: invalid duration 'soon'"),
    ("tests:\n  - name: a\n    inputs:\n      - {at: 0s, probe: {id: db, status: ok}}\n"
     "    expect: [{at: 0s, incidents: []}]\n",
     "rules/app_test.yaml:4:30: tests.0.inputs.0.probe.id: unknown probe 'db' (known: none configured)"),
    ("tests:\n  - name: a\n    inputs:\n      - {at: 0s, webhook: {source: sentry, file: gone.json}}\n"
     "    expect: [{at: 0s, incidents: []}]\n",
     "rules/app_test.yaml:4:50: tests.0.inputs.0.webhook.file: no such file: gone.json"),
    ("tests:\n  - name: a\n    expect:\n      - {at: 0s, rules: [{rule: latency, group: {env: x}, state: firing}]}\n",
     "tests.0.expect.0.rules.0.group: rule latency groups by service: give exactly those"),
    ("tests:\n  - name: a\n    inputs:\n      - {at: 0s}\n    expect: [{at: 0s, incidents: []}]\n",
     "rules/app_test.yaml:4:9: tests.0.inputs.0: give exactly one of webhook, event or probe"),
    ("tests:\n  - name: a\n    expect:\n      - {at: 0s, incidents: [}\n", "rules/app_test.yaml:4:"),
])
def test_problems_in_a_test_file_are_named_file_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch, tests: str,
                                                     expected: str) -> None:
    project(tmp_path, tests)
    monkeypatch.chdir(tmp_path)
    code, out = run(["rules/app_test.yaml"], capsys)
    assert code == 1
    assert expected in out, out
    assert "1 file with problems" in out


def test_a_refused_webhook_fails_the_test_at_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project(tmp_path, """
tests:
  - name: a Sentry metric alert without its resource header
    inputs:
      - at: 0s
        webhook: {source: sentry, payload: {action: critical}}
    expect: [{at: 0s, incidents: []}]
""")
    code, out = run([str(path)], capsys)
    assert code == 1
    assert f"at 0s ({path}:5): input refused: missing Sentry-Hook-Resource header" in out


def test_the_config_loader_skips_test_files(tmp_path: Path) -> None:
    loaded = load_config(ROOT / "responder.yaml", env={})
    assert [r.id for r in loaded.rules] == ["api-error-rate", "api-health-failing", "uptime-monitor-down"]
    assert not any(f.endswith("_test.yaml") for f in loaded.files)
    # a test file whose content is no rules file at all does not break `check`
    path = write_config(tmp_path, {"responder.yaml": "{}\n", "rules/r.yaml": "rules: []\n",
                                   "rules/r_test.yaml": "tests: [{name: x}]\n"})
    assert load_config(path, env={}).files == ["rules/r.yaml"]


def test_paths_that_hold_no_tests_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run([str(tmp_path), str(tmp_path / "missing_test.yaml")], capsys)
    assert code == 1
    assert "no *_test.yaml files in this folder" in out and "no such file or folder" in out
