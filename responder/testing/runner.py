"""`responder test PATH...`: run pipeline test files on the virtual clock and print ✓/✗ with a diff per failure.

Each test case gets a fresh pipeline (responder.rehearsal.VirtualPipeline: the daemon's own app on fakeredis,
dry-run, no vendor called). The agenda is every instant an input or an expectation names; before each instant
the timers due earlier fire at their own time, then the inputs of that instant are received, then the timers
due at it fire, then the expectations of that instant are checked.

An expectation names only what it checks: the actual state is cut down to the fields the expectation gives
(lists keep their length), and both sides are printed as YAML; a difference is shown as a unified diff.
"""

from __future__ import annotations

import difflib
import io
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from ruamel.yaml import YAML

from responder.config.base import format_duration
from responder.config.loader import LoadedConfig, load_config
from responder.config.yamlfile import Problem, YamlDoc, load_yaml, validate_doc
from responder.engine.evaluator import member_of
from responder.engine.rules import Rule
from responder.errors import ConfigError, IngestError
from responder.events import Event
from responder.ingest import ADAPTERS
from responder.rehearsal import StepRun, VirtualPipeline
from responder.testing.model import DEFAULT_START, Expectation, Input, TestCase, TestFile

__all__ = ["CaseResult", "FileResult", "discover", "run_paths"]

Loc = tuple[str | int, ...]
_STATE_RANK = {"inactive": 0, "pending": 1, "firing": 2}
#: fields shown for an actual item the expectation has no counterpart for (an unexpected incident or step)
_SUMMARY_KEYS = ("id", "rule", "title", "status", "step", "action")
_MAX_REPETITIONS = 100_000


@dataclass
class Failure:
    at: str
    where: str  # file:line of the expectation or input
    message: str = ""
    diff: list[str] = field(default_factory=list)


@dataclass
class CaseResult:
    name: str
    checks: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class FileResult:
    path: str
    config: str | None = None
    problems: list[Problem] = field(default_factory=list)
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and all(c.passed for c in self.cases)


# -- finding and loading ----------------------------------------------------------------------------
def discover(paths: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Test files under `paths`: a file as given, a folder's `*_test.yaml` (recursively). Also what was not found."""
    found: list[Path] = []
    missing: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            hits = sorted(p for p in path.rglob("*_test.y*ml") if p.suffix in (".yaml", ".yml"))
            if not hits:
                missing.append(f"{raw}: no *_test.yaml files in this folder")
            found += hits
        else:
            missing.append(f"{raw}: no such file or folder")
    return list(dict.fromkeys(found)), missing


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _config_for(test_path: Path, declared: str | None, cli_config: str | None) -> Path | None:
    """--config, else the file's `config:`, else responder.yaml next to the file or in its parent folder."""
    if cli_config:
        return Path(cli_config)
    if declared:
        return (test_path.parent / declared).resolve()
    for folder in (test_path.parent, test_path.parent.parent):
        if (folder / "responder.yaml").is_file():
            return folder / "responder.yaml"
    return None


def _check(doc: YamlDoc, spec: TestFile, loaded: LoadedConfig, base: Path) -> list[Problem]:
    """What the model cannot know: rule ids, group keys, probe ids, webhook sources, payload files."""
    problems: list[Problem] = []
    rules = {r.id: r for r in loaded.rules}
    sources = {a.source for a in ADAPTERS}
    for i, case in enumerate(spec.tests):
        for j, item in enumerate(case.inputs):
            loc: Loc = ("tests", i, "inputs", j)
            if item.webhook is not None:
                if item.webhook.source not in sources:
                    problems.append(doc.problem((*loc, "webhook", "source"), f"unknown webhook source "
                                                f"{item.webhook.source!r} (known: {', '.join(sorted(sources))})"))
                if item.webhook.file is not None and not (base / item.webhook.file).is_file():
                    problems.append(doc.problem((*loc, "webhook", "file"), f"no such file: {item.webhook.file}"))
            if item.probe is not None and item.probe.id not in loaded.probes:
                known = ", ".join(sorted(loaded.probes)) or "none configured"
                problems.append(doc.problem((*loc, "probe", "id"), f"unknown probe {item.probe.id!r} (known: {known})"))
        for j, expectation in enumerate(case.expect):
            for k, expected in enumerate(expectation.rules or []):
                loc = ("tests", i, "expect", j, "rules", k)
                rule = rules.get(expected.rule)
                if rule is None:
                    known = ", ".join(sorted(rules)) or "none loaded"
                    problems.append(doc.problem((*loc, "rule"), f"unknown rule {expected.rule!r} (known: {known})"))
                elif expected.group is not None and set(expected.group) != set(_group_keys(rule)):
                    problems.append(doc.problem((*loc, "group"), f"rule {rule.id} groups by "
                                                f"{', '.join(_group_keys(rule)) or 'nothing'}: give exactly those"))
    return problems


def _group_keys(rule: Rule) -> list[str]:
    return [path.removeprefix("labels.") for path in rule.group_by]


# -- comparing --------------------------------------------------------------------------------------
def _same_number(actual: Any, expected: Any) -> bool:
    numbers = (int, float)
    return (isinstance(actual, numbers) and isinstance(expected, numbers) and not isinstance(actual, bool)
            and not isinstance(expected, bool) and actual == expected)


def project(actual: Any, expected: Any) -> Any:
    """`actual` cut down to the shape of `expected`: only the keys it names; lists keep the actual length."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: project(actual[k], v) for k, v in expected.items() if k in actual}
    if isinstance(expected, list) and isinstance(actual, list):
        keys = list(dict.fromkeys(k for item in expected if isinstance(item, dict) for k in item))
        out = []
        for i, item in enumerate(actual):
            if i < len(expected):
                out.append(project(item, expected[i]))
            elif isinstance(item, dict):
                shown = keys or [k for k in _SUMMARY_KEYS if k in item]
                out.append({k: item[k] for k in shown if k in item})
            else:
                out.append(item)
        return out
    if _same_number(actual, expected):
        return expected  # 1 and 1.0 are the same value, and should print the same
    return actual


def _yaml_text(data: Any) -> list[str]:
    yaml = YAML(typ="rt")
    yaml.default_flow_style = None  # leaf mappings and lists inline, the rest as blocks
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    yaml.dump(json.loads(json.dumps(data, default=str)), out)
    return out.getvalue().splitlines()


def unified(expected: Any, actual: Any) -> list[str]:
    return list(difflib.unified_diff(_yaml_text(expected), _yaml_text(actual), "expected", "actual", lineterm=""))


def _step_doc(step: StepRun) -> dict[str, Any]:
    return {"step": step.step, "action": step.action, "status": step.status, "with": step.params,
            "phase": step.phase, "playbook": step.playbook, "on_failure_of": step.on_failure_of}


async def _actual(pipeline: VirtualPipeline, expectation: Expectation, rules: dict[str, Rule]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if expectation.rules is not None:
        seen = {o.decision.key for o in pipeline.observed}
        states = []
        for expected in expectation.rules:
            rule = rules[expected.rule]
            entry: dict[str, Any] = {"rule": rule.id}
            if expected.group is not None:
                entry["group"] = expected.group
                group = {k: expected.group[k] for k in _group_keys(rule)}
                entry["state"] = await pipeline.rule_state(member_of(rule, group))
            else:  # the rule as a whole: its most advanced group
                members = [m for m in seen if m.split("|", 1)[0] == rule.id]
                found = [await pipeline.rule_state(m) for m in members]
                entry["state"] = max(found, key=_STATE_RANK.__getitem__, default="inactive")
            states.append(entry)
        out["rules"] = states
    if expectation.incidents is not None:
        incidents = []
        for incident in await pipeline.incidents():
            incidents.append({
                "id": incident.id, "rule": incident.rule_id, "title": incident.title,
                "severity": incident.severity.value, "status": "open" if incident.state.is_open else "resolved",
                "state": incident.state.value, "service": incident.service, "group": incident.group,
                "playbook": incident.playbook, "events": incident.event_count, "value": incident.value,
                "resolved_by": incident.resolved_by,
                "steps": [_step_doc(s) for s in await pipeline.steps(incident.id)]})
        out["incidents"] = incidents
    return out


# -- running ----------------------------------------------------------------------------------------
def _moments(item: Input) -> Iterator[timedelta]:
    if item.every is None or item.until is None:
        yield item.at
        return
    moment, count = item.at, 0
    while moment <= item.until and count < _MAX_REPETITIONS:
        yield moment
        moment += item.every
        count += 1


def _body(item: Input, base: Path) -> bytes:
    hook = item.webhook
    assert hook is not None
    if hook.file is not None:
        return (base / hook.file).read_bytes()
    if isinstance(hook.payload, str):
        return hook.payload.encode()
    return json.dumps(hook.payload).encode()


def _events(pipeline: VirtualPipeline, item: Input, base: Path) -> list[Event]:
    if item.webhook is not None:
        hook = item.webhook
        return pipeline.webhook(hook.source, _body(item, base), hook.headers, content_type=hook.content_type,
                                query=hook.query)
    if item.event is not None:
        spec = item.event
        return [pipeline.event(source=spec.source, name=spec.name, status=spec.status, service=spec.service,
                               severity=spec.severity, value=spec.value, summary=spec.summary, url=spec.url,
                               labels=spec.labels, annotations=spec.annotations, delivery_id=spec.delivery_id)]
    assert item.probe is not None
    probe = item.probe
    return [pipeline.probe_result(probe.id, ok=probe.status == "ok", value=probe.value, summary=probe.summary)]


async def run_case(loaded: LoadedConfig, case: TestCase, doc: YamlDoc, index: int, base: Path) -> CaseResult:
    """One test case on a fresh pipeline."""
    result = CaseResult(case.name)
    started = time.perf_counter()
    rules = {r.id: r for r in loaded.rules}
    start = case.start or DEFAULT_START
    agenda: dict[timedelta, tuple[list[int], list[int]]] = {}
    for j, item in enumerate(case.inputs):
        for moment in _moments(item):
            agenda.setdefault(moment, ([], []))[0].append(j)
    for j, expectation in enumerate(case.expect):
        agenda.setdefault(expectation.at, ([], []))[1].append(j)

    def where(*loc: str | int) -> str:
        line = doc.position(("tests", index, *loc))[0]
        return f"{doc.path}:{line}"

    async with VirtualPipeline.start(loaded, start) as pipeline:
        for moment in sorted(agenda):
            inputs, checks = agenda[moment]
            await pipeline.advance(start + moment)
            label = format_duration(moment)
            for j in inputs:
                try:
                    events = _events(pipeline, case.inputs[j], base)
                except (IngestError, OSError) as exc:
                    result.failures.append(Failure(label, where("inputs", j), f"input refused: {exc}"))
                    continue
                await pipeline.feed(events)
            await pipeline.settle()
            for j in checks:
                expectation = case.expect[j]
                result.checks += 1
                expected = expectation.model_dump(mode="json", by_alias=True, exclude_unset=True,
                                                  include={"rules", "incidents"})
                actual = project(await _actual(pipeline, expectation, rules), expected)
                if actual != expected:
                    result.failures.append(Failure(label, where("expect", j), diff=unified(expected, actual)))
    result.seconds = time.perf_counter() - started
    return result


async def run_file(path: Path, cli_config: str | None, configs: dict[Path, LoadedConfig | list[str]]) -> FileResult:
    display = _display(path)
    result = FileResult(display)
    doc, problems = load_yaml(path, display, os.environ)
    if doc is None or problems:
        result.problems = problems
        return result
    spec, problems = validate_doc(doc, TestFile)
    if spec is None:
        result.problems = problems
        return result
    config_path = _config_for(path, spec.config, cli_config)
    if config_path is None:
        result.problems = [doc.problem(("config",) if spec.config else (), "no responder.yaml next to this file or in "
                                       "its parent folder: name one with `config:` or --config")]
        return result
    result.config = _display(config_path)
    key = config_path.resolve()
    if key not in configs:
        try:
            configs[key] = load_config(config_path)
        except ConfigError as exc:
            configs[key] = [str(p) for p in exc.problems]
        except OSError as exc:
            configs[key] = [f"{config_path}: {exc}"]
    loaded = configs[key]
    if isinstance(loaded, list):
        result.problems = [doc.problem(("config",) if spec.config else (),
                                       f"the configuration does not load: {'; '.join(loaded)}")]
        return result
    result.problems = _check(doc, spec, loaded, path.parent)
    if result.problems:
        return result
    for i, case in enumerate(spec.tests):
        result.cases.append(await run_case(loaded, case, doc, i, path.parent))
    return result


# -- printing ---------------------------------------------------------------------------------------
class _Style:
    def __init__(self, stream: TextIO) -> None:
        encoding = (getattr(stream, "encoding", None) or "ascii").lower()
        self.unicode = "utf" in encoding
        self.color = stream.isatty() and not os.environ.get("NO_COLOR")

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    @property
    def ok(self) -> str:
        return self.paint("✓" if self.unicode else "ok", "32")

    @property
    def fail(self) -> str:
        return self.paint("✗" if self.unicode else "FAIL", "31")

    def diff_line(self, line: str) -> str:
        if line.startswith(("+++", "---")):
            return self.paint(line, "1")
        if line.startswith("+"):
            return self.paint(line, "32")
        if line.startswith("-"):
            return self.paint(line, "31")
        if line.startswith("@@"):
            return self.paint(line, "36")
        return line


def print_file(result: FileResult, out: TextIO) -> None:
    style = _Style(out)
    suffix = f"  (config: {result.config})" if result.config else ""
    print(f"{result.path}{suffix}", file=out)
    for problem in result.problems:
        print(f"  {style.fail} {problem}", file=out)
    for case in result.cases:
        mark = style.ok if case.passed else style.fail
        print(f"  {mark} {case.name}  [{case.checks} check{'s' if case.checks != 1 else ''}, "
              f"{case.seconds * 1000:.0f} ms]", file=out)
        for failure in case.failures:
            print(f"      at {failure.at} ({failure.where}){': ' + failure.message if failure.message else ''}",
                  file=out)
            for line in failure.diff:
                print(f"        {style.diff_line(line)}", file=out)


async def run_paths(paths: Sequence[str], cli_config: str | None = None, out: TextIO | None = None) -> int:
    """Run every test file under `paths`, print the results; 0 when all passed, 1 otherwise."""
    out = out or sys.stdout
    files, missing = discover(paths)
    for line in missing:
        print(line, file=out)
    configs: dict[Path, LoadedConfig | list[str]] = {}
    results = []
    for path in files:
        result = await run_file(path, cli_config, configs)
        print_file(result, out)
        results.append(result)
    cases = [c for r in results for c in r.cases]
    failed = sum(not c.passed for c in cases)
    broken = sum(bool(r.problems) for r in results)
    parts = [f"{len(cases)} test{'s' if len(cases) != 1 else ''}", f"{len(cases) - failed} passed", f"{failed} failed"]
    if broken:
        parts.append(f"{broken} file{'s' if broken != 1 else ''} with problems")
    print(", ".join(parts), file=out)
    return 0 if files and not missing and not failed and not broken else 1

