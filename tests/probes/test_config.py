"""probes/*.yaml: every problem names file:line:col and the field; an empty target disables, loudly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from responder.cli import main
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]


def check(tmp_path: Path, files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    path = write_config(tmp_path, {"responder.yaml": "{}\n", **files})
    code = main(["check", "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.err.splitlines() + captured.out.splitlines()


@pytest.mark.parametrize(("probe_file", "expected"), [
    ("probes:\n  - id: a\n    http: {url: 'http://x/health'}\n    tcp: {host: x, port: 1}\n",
     "probes/bad.yaml:2:5: probes.0: give exactly one of http, tcp, redis, tls, dns (found http, tcp)"),
    ("probes:\n  - id: a\n    every: 30s\n", "probes/bad.yaml:2:5: probes.0: give exactly one of http, tcp, redis, "
                                               "tls, dns"),
    ("probes:\n  - id: a\n    tcp: {host: x, port: 1}\n    every: 5s\n    timeout: 10s\n",
     "probes/bad.yaml:2:5: probes.0: timeout (10s) must not exceed every (5s): the next run would be skipped"),
    ("probes:\n  - id: a\n    tcp: {host: x, port: 1}\n    every: 10s\n    jitter: 5s\n",
     "probes/bad.yaml:2:5: probes.0: jitter (5s) must be below half of every (10s)"),
    ("probes:\n  - id: a\n    http: {url: 'ftp://x'}\n",
     "probes/bad.yaml:3:17: probes.0.http.url: 'ftp://x' is not an http:// or https:// URL"),
    ("probes:\n  - id: a\n    http: {method: GET}\n", "probes/bad.yaml:3:5: probes.0.http.url: field required"),
    ("probes:\n  - id: a\n    http: {url: 'http://x', expect: {status: 999}}\n",
     "probes/bad.yaml:3:46: probes.0.http.expect.status: 999 is not an HTTP status"),
    ("probes:\n  - id: a\n    redis: {url: 'redis://x', max: 5}\n",
     "probes/bad.yaml:3:5: probes.0.redis: `max`/`min` need `length_of` (the key whose length they bound)"),
    ("probes:\n  - id: a\n    tcp: {host: x, port: 70000}\n",
     "probes/bad.yaml:3:26: probes.0.tcp.port: Input should be less than or equal to 65535"),
    ("probes:\n  - id: a\n    tcp: {host: x, port: 1}\n    intervall: 5s\n",
     "probes/bad.yaml:4:16: probes.0.intervall: unknown field"),
    ("probes:\n  - id: a\n    tcp: {host: x, port: 1}\n    every: 30 seconds\n",
     "probes/bad.yaml:4:12: probes.0.every: invalid duration '30 seconds'"),
    ("probes:\n  - id: a\n    tcp: {host: x, port: 1}\n    every: 50ms\n",
     "probes/bad.yaml:4:12: probes.0.every: must be at least 100ms"),
    ("probes:\n  - id: a\n    dns: {name: x, record: MX}\n",
     "probes/bad.yaml:3:28: probes.0.dns.record: Input should be 'A' or 'AAAA'"),
    ("probes:\n  - id: a\n    http: {url: '${HEALTH_URL}'}\n",
     "probes/bad.yaml:3:17: probes.0.http.url: environment variable HEALTH_URL is not set (use ${HEALTH_URL:-} for "
     "optional)"),
    ("probes:\n  - id: a\n    tcp: {host: x, port: 1}\n    component: api\n",
     "probes/bad.yaml:4:16: probes.0.component: unknown status page component 'api' (known: none declared under "
     "status_page.components)"),
])
def test_broken_probe_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], probe_file: str, expected: str) -> None:
    code, lines = check(tmp_path, {"probes/bad.yaml": probe_file}, capsys)
    assert code == 1
    assert any(line.startswith(expected) for line in lines), lines


def test_duplicate_probe_ids_across_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    probe = "probes:\n  - id: same\n    tcp: {host: x, port: 1}\n"
    code, lines = check(tmp_path, {"probes/a.yaml": probe, "probes/b.yaml": "# second\n" + probe}, capsys)
    assert code == 1
    assert lines[0] == "probes/b.yaml:3:9: probes.0.id: duplicate probe id 'same' (first defined in probes/a.yaml:2)"


def test_probe_dirs_is_configurable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = check(tmp_path, {"responder.yaml": "probe_dirs: [checks, more]\n",
                                   "checks/a.yaml": "probes:\n  - id: a\n    tcp: {host: x, port: 1}\n",
                                   "more/b.yaml": "probes:\n  - id: b\n    dns: {name: x}\n",
                                   "probes/ignored.yaml": "probes: [oops]\n"}, capsys)
    assert code == 0, lines
    assert "0 rules, 0 playbooks, 2 probes from 2 files" in lines[0]


def test_an_empty_target_disables_the_probe_and_says_where(make_config: Any) -> None:
    loaded = make_config({"probes/p.yaml": "probes:\n  - id: api-health\n    http: {url: '${API_HEALTH_URL:-}'}\n"
                                           "  - id: off\n    tcp: {host: x, port: 1}\n    enabled: false\n"})
    assert set(loaded.probes) == {"api-health", "off"}
    assert loaded.disabled_probes == {
        "api-health": "http.url is empty (${API_HEALTH_URL:-} is unset) at probes/p.yaml:3",
        "off": "enabled: false"}


async def test_disabled_probes_are_logged_loudly_at_start(make_config: Any, make_app: Any) -> None:
    loaded = make_config({"probes/p.yaml": "probes:\n  - id: api-health\n    http: {url: '${API_HEALTH_URL:-}'}\n"})
    with capture_logs() as logs:
        _, services = await make_app(loaded)
    [line] = [e for e in logs if e.get("probe") == "api-health"]
    assert line["log_level"] == "warning" and line["event"].startswith("PROBE DISABLED: api-health will not run: ")
    assert line["reason"] == "http.url is empty (${API_HEALTH_URL:-} is unset) at probes/p.yaml:3"
    assert not services.probes.has_probe("api-health")
    assert await services.probes.tick("api-health") is None
    outcome = await services.probes.check("api-health")
    assert not outcome.healthy and not outcome.answered and "cannot run" in outcome.reason


def test_bundled_probes_load_disabled_without_their_env_and_enabled_with_it() -> None:
    base = [sys.executable, "-m", "responder", "check", "--config", str(ROOT / "responder.yaml")]
    bare = subprocess.run(base, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False)
    assert bare.returncode == 0, bare.stderr
    assert "3 probes" in bare.stdout
    assert "note: probe api-health is disabled: http.url is empty (${API_HEALTH_URL:-} is unset) at " \
           "probes/runbook.yaml:" in bare.stdout
    env = {"PATH": "/usr/bin:/bin", "API_HEALTH_URL": "https://api.example.com/health",
           "QUEUE_REDIS_URL": "redis://127.0.0.1:6379/0"}
    configured = subprocess.run(base, capture_output=True, text=True, env=env, check=False)
    assert configured.returncode == 0, configured.stderr
    assert "note:" not in configured.stdout
