"""Rule models: which events a rule watches, what condition fires it, and how incidents group."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, GetJsonSchemaHandler, field_validator, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from responder.config.base import Duration, StrictModel, also_accepts
from responder.events import Event, EventStatus, Severity

__all__ = ["Comparison", "Condition", "Match", "Matcher", "ResolvePolicy", "Rule", "RulesFile", "Window"]

_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}


class Comparison(StrictModel):
    """`"> 0.05"`: an operator and a number."""

    op: Literal[">", ">=", "<", "<=", "==", "!="]
    threshold: float

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, raw: Any) -> Any:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return {"op": "==", "threshold": raw}
        if isinstance(raw, str):
            m = _COMPARISON.match(raw)
            if not m:
                raise ValueError(f"invalid comparison {raw!r}: use an operator and a number, like '> 0.05'")
            return {"op": m.group(1), "threshold": float(m.group(2))}
        return raw

    @classmethod
    def __get_pydantic_json_schema__(cls, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return also_accepts(core, handler, {"type": "string", "pattern": _COMPARISON.pattern}, {"type": "number"})

    def holds(self, value: float | None) -> bool:
        return value is not None and _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"


class Matcher(StrictModel):
    """One field's test: a plain value means equality; or `regex`, `in`, `not`, `not_in`."""

    eq: str | None = None
    regex: str | None = Field(default=None, description="full-match regular expression")
    in_: list[str] | None = Field(default=None, alias="in")
    not_: str | None = Field(default=None, alias="not")
    not_in: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _scalar(cls, raw: Any) -> Any:
        if isinstance(raw, str | int | float) and not isinstance(raw, bool):
            return {"eq": str(raw)}
        if isinstance(raw, list):
            return {"in": [str(v) for v in raw]}
        return raw

    @classmethod
    def __get_pydantic_json_schema__(cls, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        scalar = {"type": ["string", "number"]}
        return also_accepts(core, handler, scalar, {"type": "array", "items": scalar})

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    def compile(self) -> Callable[[Any], bool]:
        tests: list[Callable[[str], bool]] = []
        if self.eq is not None:
            expected = self.eq
            tests.append(lambda v: v == expected)
        if self.regex is not None:
            pattern = re.compile(self.regex)
            tests.append(lambda v: pattern.fullmatch(v) is not None)
        if self.in_ is not None:
            allowed = frozenset(self.in_)
            tests.append(lambda v: v in allowed)
        if self.not_ is not None:
            refused_one = self.not_
            tests.append(lambda v: v != refused_one)
        if self.not_in is not None:
            refused = frozenset(self.not_in)
            tests.append(lambda v: v not in refused)

        def test(value: Any) -> bool:
            if value is None:
                return self.not_ is not None or self.not_in is not None  # absent differs from a refused value
            text = value if isinstance(value, str) else str(value)
            return all(t(text) for t in tests)

        return test


class Match(StrictModel):
    """Which events a rule watches. Every listed field must match."""

    source: Matcher | None = None
    name: Matcher | None = None
    service: Matcher | None = None
    severity: Matcher | None = None
    labels: dict[str, Matcher] = Field(default_factory=dict)

    def compile(self) -> Callable[[Event], bool]:
        tests = [(f, m.compile()) for f, m in (("source", self.source), ("name", self.name),
                                               ("service", self.service), ("severity", self.severity)) if m]
        tests += [(f"labels.{k}", m.compile()) for k, m in self.labels.items()]
        return lambda event: all(test(event.field(path)) for path, test in tests)

    def equality_key(self) -> tuple[str | None, str | None]:
        """(source, name) when both are plain equalities: the evaluator indexes rules by them."""
        src = self.source.eq if self.source and self.source.regex is None and self.source.in_ is None else None
        name = self.name.eq if self.name and self.name.regex is None and self.name.in_ is None else None
        return src, name


StatusWord = Literal["firing", "resolved", "failing", "ok", "info"]


class Condition(StrictModel):
    """What must be true of an event (or of a window's aggregate): its status and/or its value."""

    status: StatusWord | None = Field(default=None, description="firing and failing are synonyms, so are resolved/ok")
    value: Comparison | None = None

    def event_holds(self, event: Event) -> bool:
        if self.status is None:
            status_ok = event.status.is_problem
        else:
            wanted = EventStatus(self.status)
            status_ok = (event.status.is_problem and wanted.is_problem) or (
                event.status.is_recovery and wanted.is_recovery) or event.status == wanted
        if not status_ok:
            return False
        return self.value is None or self.value.holds(event.value)


class Window(StrictModel):
    """Aggregate matching events over a sliding window: a count, or a ratio of `of` to all."""

    window: Duration
    count: Condition | None = Field(default=None, description="count events meeting this condition")
    ratio: dict[Literal["of"], Condition] | None = Field(default=None, description="{of: condition}: share of events")

    @model_validator(mode="after")
    def _one_kind(self) -> Window:
        if (self.count is None) == (self.ratio is None):
            raise ValueError("give exactly one of count or ratio")
        if self.window <= timedelta(0):
            raise ValueError("window must be longer than 0s")
        return self

    @property
    def kind(self) -> Literal["count", "ratio"]:
        return "count" if self.count is not None else "ratio"

    @property
    def counted(self) -> Condition:
        return self.count if self.count is not None else (self.ratio or {})["of"]


class ResolvePolicy(StrictModel):
    """When a firing rule's incident resolves by itself."""

    after: Duration = Field(default=timedelta(0), description="condition false for this long (keep_firing_for)")
    quiet: Duration | None = Field(default=None, description="no matching event for this long (for alerts that "
                                                             "never send a resolve, like Sentry issue alerts)")


GroupField = Annotated[str, Field(pattern=r"^(source|name|service|severity|(labels\.)?[A-Za-z_][A-Za-z0-9_.\-]*)$")]


class Rule(StrictModel):
    """A rule: match events, test a condition (optionally over a window), hold it `for`, then fire."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", description="unique id (lowercase, digits, - _ .)")
    description: str = ""
    title: str | None = Field(default=None, description="incident title template; default: the description or id")
    match: Match
    when: Condition = Field(default_factory=Condition)
    over: Window | None = None
    for_: Duration = Field(default=timedelta(0), alias="for", description="the condition must hold this long")
    severity: Severity = Severity.WARNING
    group_by: list[GroupField] = Field(default_factory=list, description="fields whose values form the incident key")
    playbook: str | None = None
    resolve: ResolvePolicy = Field(default_factory=ResolvePolicy)
    enabled: bool = True

    @model_validator(mode="after")
    def _window_needs_value(self) -> Rule:
        if self.over is not None:
            if self.when.value is None:
                raise ValueError("a rule with `over` needs `when: {value: ...}` to compare the aggregate")
            if self.when.status is not None:
                raise ValueError("with `over`, put the status test inside count/ratio, not in `when`")
        return self

    def group_values(self, event: Event) -> dict[str, str]:
        out = {}
        for path in self.group_by:
            value = event.field(path)
            out[path.removeprefix("labels.")] = "" if value is None else str(value)
        return out


class RulesFile(StrictModel):
    """A file under rules/."""

    rules: list[Rule] = Field(default_factory=list)
