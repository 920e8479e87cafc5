"""`responder schema`: the committed schema/ files are what the models generate; every bundled YAML file carries the
yaml-language-server modeline and validates against its schema (jsonschema, draft 2020-12); broken files fail."""

from __future__ import annotations

import datetime
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from responder.cli import main
from responder.schema import SCHEMAS, generate, render

ROOT = Path(__file__).resolve().parents[2]
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")
BUNDLED = {
    "responder.yaml": "responder.json",
    "rules/runbook.yaml": "rules.json",
    "rules/runbook_test.yaml": "tests.json",
    "playbooks/runbook.yaml": "playbooks.json",
    "probes/runbook.yaml": "probes.json",
}


def plain(node: Any) -> Any:
    """YAML as JSON Schema sees it (timestamps stay text, as in an editor)."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, datetime.date | datetime.datetime):
        return node.isoformat()
    return node


def errors(schema_name: str, text: str) -> list[str]:
    schema = json.loads((ROOT / "schema" / schema_name).read_text())
    data = plain(YAML(typ="safe", pure=True).load(text))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in Draft202012Validator(schema).iter_errors(data)]


def test_the_committed_schemas_are_up_to_date() -> None:
    generated = generate()
    assert sorted(generated) == sorted(p.name for p in (ROOT / "schema").glob("*.json"))
    for name, schema in generated.items():
        Draft202012Validator.check_schema(schema)
        assert (ROOT / "schema" / name).read_text() == render(schema), \
            f"schema/{name} is out of date: run `python3 -m responder schema --out schema`"


def test_the_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SCHEMAS)
    assert main(["schema", "--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "rules.json").write_text("{}\n")
    assert main(["schema", "--out", str(tmp_path), "--check"]) == 1
    assert "rules.json is out of date" in capsys.readouterr().err
    assert main(["schema", "--out", str(ROOT / "schema"), "--check"]) == 0


@pytest.mark.parametrize(("path", "schema_name"), sorted(BUNDLED.items()))
def test_every_bundled_file_carries_the_modeline_and_validates(path: str, schema_name: str) -> None:
    file = ROOT / path
    first = file.read_text().splitlines()[0]
    match = MODELINE.match(first)
    assert match, f"{path}: first line should be the yaml-language-server modeline, not {first!r}"
    assert (file.parent / match.group(1)).resolve() == (ROOT / "schema" / schema_name).resolve()
    assert errors(schema_name, file.read_text()) == []


def test_the_bundle_in_the_wheel_keeps_the_modelines_working() -> None:
    """rules/, playbooks/, probes/ and responder.yaml ship as responder/bundled/*, and schema/ next to them."""
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
        "force-include"]
    for folder in ("rules", "playbooks", "probes", "schema"):
        assert include[folder] == f"responder/bundled/{folder}"
    assert "# yaml-language-server: $schema=../schema/rules.json" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(("schema_name", "text", "expected"), [
    ("rules.json", "rules:\n  - {id: a, match: {source: probe}, severity: urgent}\n", "rules.0.severity: 'urgent'"),
    ("rules.json", "rules:\n  - {id: a, match: {source: probe}, for: soon}\n", "rules.0.for: 'soon'"),
    ("rules.json", "rules:\n  - {id: a, match: {source: probe}, fro: 5m}\n", "('fro' was unexpected)"),
    ("rules.json", "rules:\n  - {id: a, match: {source: probe}, when: {value: about 5}}\n", "rules.0.when.value"),
    ("playbooks.json", "playbooks:\n  - id: p\n    steps: [{name: r, action: railway.rollback, with: {servce: api}}]\n",
     "'service' is a required property"),
    ("playbooks.json", "playbooks:\n  - id: p\n    steps: [{name: r, action: railway.rollback, "
                       "with: {service: api, envronment: x}}]\n", "('envronment' was unexpected)"),
    ("playbooks.json", "playbooks:\n  - id: p\n    steps: [{name: r, action: railway.rolback}]\n",
     "playbooks.0.steps.0.action: 'railway.rolback' is not valid"),
    ("playbooks.json", "playbooks:\n  - id: p\n    steps: [{name: s, action: kubernetes.scale, "
                       "with: {deployment: api, replicas: many}}]\n", "replicas: 'many' is not valid"),
    ("probes.json", "probes:\n  - {id: a, tcp: {host: db, port: 5432}, every: often}\n", "probes.0.every: 'often'"),
    ("responder.json", "server: {port: eighty}\n", "server.port: 'eighty'"),
    ("tests.json", "tests:\n  - name: a\n    expect: [{at: 0s, rules: [{rule: x, state: burning}]}]\n",
     "tests.0.expect.0.rules: [{'rule': 'x', 'state': 'burning'}] is not valid"),
])
def test_a_broken_file_fails(schema_name: str, text: str, expected: str) -> None:
    found = errors(schema_name, text)
    assert any(expected in e for e in found), found


@pytest.mark.parametrize(("schema_name", "text"), [
    # shorthands the models accept
    ("rules.json", "rules:\n  - {id: a, match: {source: probe, name: [a, b], service: api}, when: {value: 0.5}}\n"),
    ("playbooks.json", "playbooks:\n  - id: p\n    steps: [{name: l, action: log, with: {message: hi}, retries: 2, "
                       "timeout: 90}]\n"),
    ("probes.json", "probes:\n  - {id: a, http: {url: 'https://x', expect: {status: 200}}, every: 30s}\n"),
    # ${ENV} references anywhere, templates in a step's parameters
    ("responder.json", "server: {port: '${PORT:-8080}'}\nlog_level: ${LOG_LEVEL}\n"),
    ("playbooks.json", "playbooks:\n  - id: p\n    steps: [{name: s, action: kubernetes.scale, "
                       "with: {deployment: api, replicas: '{{ event.value | int }}'}}]\n"),
])
def test_what_the_loader_accepts_validates(schema_name: str, text: str) -> None:
    assert errors(schema_name, text) == []
