"""Templating of step parameters and conditions with Jinja2's SandboxedEnvironment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["Renderer", "TemplateError", "has_template"]


def has_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class Renderer:
    """Renders `with` values recursively; a missing variable is an error, not an empty string."""

    #: compiled templates and expressions kept per source text (playbooks are a small, fixed set)
    CACHE_LIMIT = 4096

    def __init__(self) -> None:
        self.env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True)
        self._templates: dict[str, Template] = {}
        self._expressions: dict[str, Callable[..., Any]] = {}

    def _template(self, source: str) -> Template:
        template = self._templates.get(source)
        if template is None:
            if len(self._templates) >= self.CACHE_LIMIT:
                self._templates.clear()
            template = self._templates[source] = self.env.from_string(source)
        return template

    def _expression(self, source: str) -> Callable[..., Any]:
        expression = self._expressions.get(source)
        if expression is None:
            if len(self._expressions) >= self.CACHE_LIMIT:
                self._expressions.clear()
            expression = self._expressions[source] = self.env.compile_expression(source, undefined_to_none=False)
        return expression

    def check(self, value: Any) -> None:
        """Compile every template in `value` (load time): raise TemplateError on bad syntax."""
        if isinstance(value, dict):
            for item in value.values():
                self.check(item)
        elif isinstance(value, list):
            for item in value:
                self.check(item)
        elif has_template(value):
            self.env.parse(value)

    def check_expression(self, expression: str) -> None:
        self.env.compile_expression(expression)

    def render(self, value: Any, context: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            return {k: self.render(v, context) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, context) for v in value]
        if has_template(value):
            return self._template(value).render(context)
        return value

    def truthy(self, expression: str, context: dict[str, Any]) -> bool:
        return bool(self._expression(expression)(**context))
