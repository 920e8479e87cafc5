"""`responder schema`: JSON Schema (draft 2020-12) for every YAML file responder reads, from the pydantic models.

One file per kind — responder.json, rules.json, playbooks.json, probes.json and tests.json (the `*_test.yaml`
pipeline tests) — generated in validation mode, so it describes what may be written, shorthands included
(`when: {value: "> 0.05"}`, `retries: 2`, `status: 200`: each model with a shorthand declares it next to its
validator). Point an editor at them with a yaml-language-server modeline as a file's first line:

    # yaml-language-server: $schema=../schema/rules.json

Two things the models cannot say are added here:

- every YAML file goes through ${ENV_VAR} substitution before validation, so a value the schema would
  constrain (a number, a duration, an enum, a pattern) also accepts a string holding a `${VAR}` reference;
- a playbook step's `with` depends on its `action`: the schema carries each action's parameters model
  (from `responder.actions.action_catalog()`) and an if/then per action, so a misspelt or missing parameter
  is flagged in the editor. A top-level parameter may also be a Jinja2 template (`"{{ incident.service }}"`),
  whose value is only known when the step runs; the loader checks those the same way.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from responder.actions import action_catalog
from responder.config.base import format_duration
from responder.config.model import ResponderConfig
from responder.engine.rules import RulesFile
from responder.playbooks.model import PlaybooksFile
from responder.probes.model import ProbesFile
from responder.testing.model import TestFile

__all__ = ["DRAFT", "SCHEMAS", "generate", "render", "write"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ENV_REF = "EnvReference"
TEMPLATE = "Template"
_META = ("title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly")
_PARAMS_PREFIX = "params."


class _Generator(GenerateJsonSchema):
    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):  # as written in YAML (30s), not ISO 8601 (PT30S)
            return format_duration(dft)
        return super().encode_default(dft)


def _env_def() -> dict[str, Any]:
    return {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
            "description": "an ${ENV_VAR} (or ${ENV_VAR:-default}) reference, substituted when the file is loaded"}


def _template_def() -> dict[str, Any]:
    return {"type": "string", "pattern": r"\{\{|\{%",
            "description": "a Jinja2 template, rendered when the step runs ({{ incident.service }})"}


def _plain_string(schema: dict[str, Any]) -> bool:
    """Accepts any string, or any but the shortest (so it accepts a reference or a template as it is)."""
    return schema.get("type") == "string" and not any(k in schema for k in ("pattern", "enum", "const", "maxLength"))


def _any_string(schema: dict[str, Any]) -> bool:
    return _plain_string(schema) or any(_plain_string(m) for m in schema.get("anyOf", []))


def _constrained(schema: dict[str, Any]) -> bool:
    """A scalar slot that a reference string would not satisfy."""
    if "anyOf" in schema:
        members = schema["anyOf"]
        return not _any_string(schema) and any(_constrained(m) for m in members)
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "string" in kinds and not _plain_string({**schema, "type": "string"}):
        return True
    if "string" in kinds:
        return False
    return any(k in ("integer", "number", "boolean") for k in kinds) or "enum" in schema or "const" in schema


def _widen(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    """`schema` or a string matching the `ref` definition; metadata stays on the outside."""
    outer = {k: schema[k] for k in _META if k in schema}
    core = {k: v for k, v in schema.items() if k not in _META}
    members = core["anyOf"] if set(core) == {"anyOf"} else [core]
    return {**outer, "anyOf": [*members, {"$ref": f"#/$defs/{ref}"}]}


def _slots(schema: dict[str, Any], visit: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Apply `visit` to every value slot below `schema` (properties, items, additionalProperties, anyOf...)."""
    for key in ("properties", "patternProperties"):
        for name, sub in list(schema.get(key, {}).items()):
            schema[key][name] = visit(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = visit(schema[key])
    for key in ("prefixItems",):
        if isinstance(schema.get(key), list):
            schema[key] = [visit(s) for s in schema[key]]


def _accept_env(schema: dict[str, Any]) -> dict[str, Any]:
    def visit(sub: dict[str, Any]) -> dict[str, Any]:
        for key in ("anyOf", "oneOf", "allOf"):
            for member in sub.get(key, []):
                if isinstance(member, dict):
                    _slots(member, visit)
        _slots(sub, visit)
        return _widen(sub, ENV_REF) if _constrained(sub) else sub

    for definition in schema.get("$defs", {}).values():
        visit(definition)
    visit(schema)
    return schema


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(mode="validation", schema_generator=_Generator)


def _playbooks_schema() -> dict[str, Any]:
    """PlaybooksFile plus each action's parameters model, and an if/then per action on the step's `with`."""
    schema = _model_schema(PlaybooksFile)
    catalog = action_catalog()
    models = {params for _, _, params in catalog.values()}
    refs, params_schema = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/$defs/" + _PARAMS_PREFIX + "{model}", schema_generator=_Generator)
    defs = schema.setdefault("$defs", {})
    for name, definition in params_schema.get("$defs", {}).items():
        defs[_PARAMS_PREFIX + name] = definition
    for model in models:  # a top-level parameter may be a template: its value is only known at run time
        definition = defs[refs[(model, "validation")]["$ref"].split("/")[-1]]
        for name, sub in list(definition.get("properties", {}).items()):
            if not _any_string(sub):
                definition["properties"][name] = _widen(sub, TEMPLATE)
    step = defs["Step"]
    step["properties"]["action"] = {**step["properties"]["action"], "enum": sorted(catalog)}
    rules = []
    for action, (_, _, model) in sorted(catalog.items()):
        ref = refs[(model, "validation")]["$ref"]
        then: dict[str, Any] = {"properties": {"with": {"$ref": ref}}}
        if any(field.is_required() for field in model.model_fields.values()):
            then["required"] = ["with"]
        rules.append({"if": {"properties": {"action": {"const": action}}, "required": ["action"]}, "then": then})
    step["allOf"] = rules
    defs[TEMPLATE] = _template_def()
    return schema


#: file name -> (title, what it describes, how to build the schema)
SCHEMAS: dict[str, tuple[str, str, Callable[[], dict[str, Any]]]] = {
    "responder.json": ("responder.yaml", "The daemon's configuration.", lambda: _model_schema(ResponderConfig)),
    "rules.json": ("rules/*.yaml", "Rules: which events fire which incident, and its playbook.",
                   lambda: _model_schema(RulesFile)),
    "playbooks.json": ("playbooks/*.yaml", "Playbooks: the steps run when a rule fires (`with` is checked per "
                                           "action).", _playbooks_schema),
    "probes.json": ("probes/*.yaml", "Probes: scheduled health checks whose results are events.",
                    lambda: _model_schema(ProbesFile)),
    "tests.json": ("*_test.yaml", "Pipeline tests run by `responder test`.", lambda: _model_schema(TestFile)),
}


def generate() -> dict[str, dict[str, Any]]:
    """Every schema, by file name."""
    out = {}
    for name, (title, description, build) in SCHEMAS.items():
        schema = copy.deepcopy(build())
        schema.setdefault("$defs", {})[ENV_REF] = _env_def()
        _accept_env(schema)
        schema.pop("title", None)
        schema.pop("description", None)
        out[name] = {"$schema": DRAFT, "title": f"responder: {title}", "description": description, **schema}
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def write(out_dir: Path, *, check: bool = False) -> list[str]:
    """Write every schema under `out_dir`; with `check`, write nothing and return the files that differ."""
    differing = []
    for name, schema in generate().items():
        path = out_dir / name
        text = render(schema)
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            differing.append(str(path))
            if not check:
                out_dir.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return differing
