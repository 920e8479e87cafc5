"""Shared building blocks of every config model: StrictModel and the Duration type."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, GetJsonSchemaHandler, PlainSerializer, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

__all__ = ["Duration", "StrictModel", "also_accepts", "format_duration", "parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?(ms|s|m|h|d|w))+\s*$"


class StrictModel(BaseModel):
    """Base of every config, rule and playbook model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def also_accepts(core: CoreSchema, handler: GetJsonSchemaHandler, *forms: JsonSchemaValue) -> JsonSchemaValue:
    """For `__get_pydantic_json_schema__` of a model whose before-validator takes shorthands (`"> 0.05"`, `3`):
    the validation schema accepts those `forms` as well as the model's own mapping."""
    schema = handler(core)
    if handler.mode != "validation":
        return schema
    return {"anyOf": [*forms, schema]}


def parse_duration(raw: Any) -> timedelta:
    """'30s', '5m', '1h30m', '250ms', '2d' or a number of seconds -> timedelta."""
    if isinstance(raw, timedelta):
        return raw
    if isinstance(raw, bool):
        raise ValueError("a duration must be like 30s, 5m or 1h")
    if isinstance(raw, int | float):
        if raw < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=raw)
    if not isinstance(raw, str):
        raise ValueError("a duration must be like 30s, 5m or 1h")
    text = raw.strip().replace(" ", "")
    if not text or not re.fullmatch(r"(\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+", text):
        raise ValueError(f"invalid duration {raw!r}: use forms like 30s, 5m, 1h30m, 250ms")
    return timedelta(seconds=sum(float(n) * _UNIT[u] for n, u in _PART.findall(text)))


def format_duration(value: timedelta) -> str:
    """timedelta -> the shortest '1h30m' style text."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if total_ms >= size:
            count, total_ms = divmod(total_ms, size)
            out.append(f"{count}{unit}")
    return "".join(out)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": DURATION_PATTERN}, {"type": "number", "minimum": 0}],
                    "description": "a duration: 30s, 5m, 1h30m, 250ms, or a number of seconds",
                    "examples": ["30s", "5m", "1h30m"]}),
]
