"""Templating of step parameters and conditions with Jinja2's SandboxedEnvironment."""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["Renderer", "TemplateError", "has_template"]


def has_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class Renderer:
    """Renders `with` values recursively; a missing variable is an error, not an empty string."""

    def __init__(self) -> None:
        self.env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True)

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
            return self.env.from_string(value).render(context)
        return value

    def truthy(self, expression: str, context: dict[str, Any]) -> bool:
        return bool(self.env.compile_expression(expression, undefined_to_none=False)(**context))
