"""Dashboard fixtures: the real app on the real Redis with API tokens, and helpers to log in and act."""

from __future__ import annotations

import re
from typing import Any

import pytest

from responder.events import Severity

WRITE = "write-token-0123456789"
READ = "read-token-0123456789"
TOKENS = f"server: {{api_tokens: {{write: '{WRITE}', read: '{READ}'}}}}\n"
PLAYBOOK = """
playbooks:
  - id: notify
    steps:
      - name: tell the hook
        action: http.request
        with: {url: "${SINK}/hook", method: POST, json: {incident: "{{ incident.id }}", title: "{{ incident.title }}"}}
"""
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    match = CSRF.search(page)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def login(client: Any, token: str = WRITE, name: str = "alice") -> str:
    """Log in through the form; returns the CSRF token the pages now carry."""
    response = await client.post("/ui/login", data={"token": token, "name": name, "next": "/ui/incidents"},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    page = await (await client.get("/ui/incidents")).text()
    return csrf_of(page) if 'name="csrf"' in page else ""


async def open_incident(services: Any, title: str = "API error rate above 5%", *, key: str = "k",
                        severity: Severity = Severity.CRITICAL, service: str = "api", playbook: str | None = None,
                        **extra: Any) -> Any:
    incident, _ = await services.incidents.open(key=key, rule_id="api-error-rate", title=title, severity=severity,
                                                group={"service": service}, playbook=playbook, event=None,
                                                text="opened by test")
    if extra:  # summary, labels, url: fields an alert carries
        doc = incident.model_copy(update=extra)
        assert await services.incidents.store.save(incident.state, doc, None) == "ok"
        incident = doc
    return incident


@pytest.fixture
async def ui(make_config: Any, make_app: Any, sink: Any) -> tuple[Any, Any]:
    """(client, services) with read and write tokens set and the `notify` playbook aimed at the sink."""
    loaded = make_config({"responder.yaml": TOKENS, "playbooks/p.yaml": PLAYBOOK}, env={"SINK": sink.url})
    client, services = await make_app(loaded)
    return client, services
