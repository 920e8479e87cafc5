"""The demo's configuration: responder.yaml pointing the providers at the stand-ins, and the bundled
rules, playbooks and probes with their durations compressed so a whole game day takes under a minute.

The runbook files are derived from the bundled ones at run time (ruamel round trip: comments and step
structure are kept), so the demo always shows the runbook that ships; only durations change:

- playbooks: `wait` steps (the settle time) and `verify` (interval, deadline) are cut to seconds;
  retry back-offs too;
- probes: api-health runs every second (the BullMQ queue probes, which need QUEUE_REDIS_URL, are left out);
- rules: api-health-failing's `for: 5m` becomes 30s (longer than any health outage the scenario scripts,
  so only the Sentry error-rate rule drives it; api-error-rate already fires at once, as Sentry's own
  alert window is its `for`).

Secrets are `${VAR}` references filled from the environment the demo passes to load_config (the stand-ins'
made-up credentials): the same path a production config takes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from responder.config.loader import bundled_config_path

__all__ = ["Timing", "write_config"]


@dataclass(frozen=True)
class Timing:
    """The demo's compressed durations (bundled value in the comment)."""

    settle: str = "2s"  # wait after the rollback: 30s
    verify_within: str = "5s"  # verify deadline: 5m
    verify_interval: str = "1s"  # between verify checks: 30s
    retry_backoff: str = "1s"  # rollback/restart retries: 5s
    probe_every: str = "1s"  # api-health probe: 30s
    health_for: str = "30s"  # api-health-failing rule: 5m
    engine_tick: str = "250ms"  # rule timers: 1s
    statuspage_interval: str = "200ms"  # Statuspage's 1 request/s pacing (the stand-in has no rate limit): 1s


RESPONDER_YAML = """\
# Written by `responder demo`: the daemon on the embedded store (no Redis), its providers pointed at the
# local stand-ins on 127.0.0.1 with made-up credentials, the runbook next to this file (compressed time).
server:
  host: 127.0.0.1
  port: {port}
  public_url: "http://127.0.0.1:{port}"
ingest:
  sentry: {{client_secret: "${{SENTRY_CLIENT_SECRET}}"}}
engine: {{tick: {tick}}}
providers:
  railway: {{token: "${{RAILWAY_TOKEN}}", project_id: "${{RAILWAY_PROJECT_ID}}", base_url: "${{RAILWAY_URL}}"}}
  slack: {{bot_token: "${{SLACK_BOT_TOKEN}}", channel: "#incidents", base_url: "${{SLACK_URL}}"}}
  pagerduty:
    routing_key: "${{PAGERDUTY_ROUTING_KEY}}"
    base_url: "${{PAGERDUTY_URL}}"
    ca_file: "${{PAGERDUTY_CA_FILE}}"           # the stand-in's throwaway CA (the client wants https)
  statuspage:
    api_key: "${{STATUSPAGE_API_KEY}}"
    page_id: "${{STATUSPAGE_PAGE_ID}}"
    base_url: "${{STATUSPAGE_URL}}"
    min_interval: {statuspage_interval}
"""


def _yaml() -> YAML:
    yaml = YAML()
    yaml.width = 4096
    yaml.preserve_quotes = True
    return yaml


def _load(path: Path) -> Any:
    return _yaml().load(path.read_text())


def _dump(doc: Any, header: str) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return header + out.getvalue()


def _steps(steps: Any) -> list[Any]:
    out: list[Any] = []
    for step in steps or []:
        out.append(step)
        out += _steps(step.get("on_failure"))
    return out


def compress_playbooks(doc: Any, timing: Timing) -> Any:
    for book in doc["playbooks"]:
        for step in _steps(book.get("steps")) + _steps(book.get("on_resolve")):
            params = step.get("with")
            if step["action"] == "wait" and params is not None and "duration" in params:
                params["duration"] = timing.settle
            if step["action"] == "verify" and params is not None:
                params["within"] = timing.verify_within
                params["interval"] = timing.verify_interval
            retries = step.get("retries")
            if retries is not None and "backoff" in retries:
                retries["backoff"] = timing.retry_backoff
    return doc


def compress_probes(doc: Any, timing: Timing) -> Any:
    keep = [p for p in doc["probes"] if p["id"] == "api-health"]
    for probe in keep:
        probe["every"] = timing.probe_every
        probe["timeout"] = timing.probe_every  # at most `every`
    doc["probes"] = keep
    return doc


def compress_rules(doc: Any, timing: Timing) -> Any:
    for rule in doc["rules"]:
        if rule["id"] == "api-health-failing":
            rule["for"] = timing.health_for
    return doc


def write_config(root: Path, *, port: int, timing: Timing | None = None) -> Path:
    """Write responder.yaml, rules/, playbooks/ and probes/ under `root`; returns responder.yaml's path."""
    timing = timing or Timing()
    root.mkdir(parents=True, exist_ok=True)
    bundled = bundled_config_path()
    base = bundled.parent
    header = ("# Derived by `responder demo` from the bundled {name}: same structure, durations compressed\n"
              "# (responder/demo/config.py says which).\n")
    main = _load(bundled)
    text = RESPONDER_YAML.format(port=port, tick=timing.engine_tick, statuspage_interval=timing.statuspage_interval)
    status_page = {"status_page": {"title": str(main["status_page"]["title"]) + " (demo)",
                                   "components": [dict(c) for c in main["status_page"]["components"]]}}
    out = io.StringIO()
    _yaml().dump(status_page, out)
    (root / "responder.yaml").write_text(text + out.getvalue())
    for folder, compress in (("rules", compress_rules), ("playbooks", compress_playbooks),
                             ("probes", compress_probes)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        doc = compress(_load(base / folder / "runbook.yaml"), timing)
        (root / folder / "runbook.yaml").write_text(_dump(doc, header.format(name=f"{folder}/runbook.yaml")))
    return root / "responder.yaml"
