"""Renderer: templates and conditions are compiled once per source text and render per context."""

from __future__ import annotations

import pytest

from responder.playbooks.render import Renderer, TemplateError


def test_compiled_once_rendered_per_context() -> None:
    renderer = Renderer()
    value = {"text": "rolling back {{ incident.service }}", "n": 3, "tags": ["{{ incident.id }}", "x"]}
    first = renderer.render(value, {"incident": {"service": "api", "id": "1"}})
    second = renderer.render(value, {"incident": {"service": "web", "id": "2"}})
    assert first == {"text": "rolling back api", "n": 3, "tags": ["1", "x"]}
    assert second == {"text": "rolling back web", "n": 3, "tags": ["2", "x"]}
    assert len(renderer._templates) == 2
    assert renderer.truthy("steps.a.status == 'ok'", {"steps": {"a": {"status": "ok"}}})
    assert not renderer.truthy("steps.a.status == 'ok'", {"steps": {"a": {"status": "failed"}}})
    assert len(renderer._expressions) == 1


def test_missing_variables_still_fail() -> None:
    with pytest.raises(TemplateError):
        Renderer().render("{{ incident.nope.deeper }}", {"incident": {}})
