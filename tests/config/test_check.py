"""`responder check`: every problem printed as file:line:col: field: message, exit 1; the bundled files pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from responder.cli import main
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = "playbooks:\n  - id: notify\n    steps:\n      - {name: log, action: log, with: {message: hi}}\n"


def check(tmp_path: Path, files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    path = write_config(tmp_path, {"responder.yaml": "{}\n", "playbooks/p.yaml": PLAYBOOK, **files})
    code = main(["check", "--config", str(path)])
    return code, capsys.readouterr().err.splitlines()


def test_bundled_files_pass() -> None:
    result = subprocess.run([sys.executable, "-m", "responder", "check", "--config", str(ROOT / "responder.yaml")],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False)
    assert result.returncode == 0, result.stderr
    assert "3 rules, 3 playbooks" in result.stdout


@pytest.mark.parametrize(("rule_file", "expected"), [
    # a bad duration, on the line and column of its value
    ("rules:\n  - id: a\n    match: {source: probe}\n    for: 5 minutes\n",
     "rules/broken.yaml:4:10: rules.0.for: invalid duration '5 minutes': use forms like 30s, 5m, 1h30m, 250ms"),
    # an unknown key
    ("rules:\n  - id: a\n    match: {source: probe}\n    fro: 5m\n",
     "rules/broken.yaml:4:10: rules.0.fro: unknown field"),
    # a missing required field points at the mapping that lacks it
    ("rules:\n  - id: a\n    when: {status: firing}\n", "rules/broken.yaml:2:5: rules.0.match: field required"),
    # a rule naming an unknown playbook
    ("rules:\n  - id: a\n    match: {source: probe}\n    playbook: rollback-web\n",
     "rules/broken.yaml:4:15: rules.0.playbook: unknown playbook 'rollback-web' (known: notify)"),
    # a bad comparison
    ("rules:\n  - id: a\n    match: {source: probe}\n    when: {value: 'more than 5'}\n",
     "rules/broken.yaml:4:19: rules.0.when.value: invalid comparison 'more than 5'"),
    # YAML syntax
    ("rules:\n  - id: a\n    match: {source: probe\n", "rules/broken.yaml:4:1: (syntax)"),
])
def test_broken_rule_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], rule_file: str, expected: str) -> None:
    code, lines = check(tmp_path, {"rules/broken.yaml": rule_file}, capsys)
    assert code == 1
    assert any(line.startswith(expected) for line in lines), lines


def test_duplicate_rule_ids_across_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rule = "rules:\n  - id: same\n    match: {source: probe}\n"
    code, lines = check(tmp_path, {"rules/a.yaml": rule, "rules/b.yaml": "# second\n" + rule}, capsys)
    assert code == 1
    assert lines[0] == "rules/b.yaml:3:9: rules.0.id: duplicate rule id 'same' (first defined in rules/a.yaml:2)"


def test_playbook_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    playbook = ("playbooks:\n  - id: p\n    steps:\n"
                "      - {name: a, action: railway.rolback}\n"
                "      - {name: b, action: status.set, with: {component: api, status: broken}}\n"
                "      - {name: c, action: log, with: {message: '{{ incident.id '}}\n"
                "      - {name: d, action: wait, with: {duration: 'soon'}}\n")
    code, lines = check(tmp_path, {"playbooks/p.yaml": playbook}, capsys)
    assert code == 1
    joined = "\n".join(lines)
    assert "playbooks/p.yaml:4:27: playbooks.0.steps.0.action: unknown action 'railway.rolback'" in joined
    assert "playbooks/p.yaml:5:70: playbooks.0.steps.1.with.status: Input should be 'operational'" in joined
    assert "playbooks/p.yaml:6:32: playbooks.0.steps.2.with: template error" in joined
    assert "playbooks.0.steps.3.with.duration: invalid duration 'soon'" in joined


def test_unset_environment_variable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = check(tmp_path, {"responder.yaml": "redis: {url: '${NOT_SET_ANYWHERE}'}\n"}, capsys)
    assert code == 1
    assert lines[0].startswith("responder.yaml:1:14: redis.url: environment variable NOT_SET_ANYWHERE is not set")


def test_vendor_action_params_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    playbook = ("playbooks:\n  - id: p\n    steps:\n"
                "      - name: rollback\n        action: railway.rollback\n"
                "        with: {environment: production, deploymentid: abc}\n"
                "      - {name: page, action: pagerduty.trigger, with: {severity: 7}}\n"
                "      - {name: scale, action: kubernetes.scale, with: {deployment: api, replicas: -2}}\n"
                "      - {name: run, action: shell.run, with: {argv: 'systemctl restart worker'}}\n"
                "      - {name: fine, action: railway.rollback, with: {service: '{{ incident.service }}'}}\n")
    code, lines = check(tmp_path, {"playbooks/p.yaml": playbook}, capsys)
    assert code == 1
    joined = "\n".join(lines)
    assert "playbooks/p.yaml:6:55: playbooks.0.steps.0.with.deploymentid: unknown field" in lines
    assert "playbooks/p.yaml:6:9: playbooks.0.steps.0.with.service: field required" in lines
    assert "playbooks/p.yaml:7:66: playbooks.0.steps.1.with.severity: Input should be a valid string" in lines
    assert "playbooks/p.yaml:8:83: playbooks.0.steps.2.with.replicas: Input should be greater than or equal to 0" \
        in lines
    assert "playbooks/p.yaml:9:53: playbooks.0.steps.3.with.argv: Input should be a valid list" in lines
    assert "steps.4" not in joined  # a templated value is checked when it is rendered
