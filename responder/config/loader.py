"""Load responder.yaml plus every rules/*.yaml and playbooks/*.yaml; collect every problem at once."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, SecretStr

from responder.actions import action_catalog
from responder.actions.base import ActionProvider
from responder.config.base import StrictModel
from responder.config.model import ResponderConfig
from responder.config.yamlfile import Problem, YamlDoc, load_yaml, validate_doc
from responder.engine.rules import Rule, RulesFile
from responder.errors import ConfigError
from responder.playbooks.model import Playbook, PlaybooksFile, Step
from responder.playbooks.render import Renderer, TemplateError, has_template
from responder.probes.model import Probe, ProbesFile

__all__ = ["LoadedConfig", "bundled_config_path", "is_test_file", "load_config", "secret_values"]

M = TypeVar("M", bound=BaseModel)


@dataclass
class LoadedConfig:
    """Everything the daemon runs from, validated together."""

    config: ResponderConfig
    rules: list[Rule] = field(default_factory=list)
    playbooks: dict[str, Playbook] = field(default_factory=dict)
    probes: dict[str, Probe] = field(default_factory=dict)
    #: probe id -> why it does not run (an empty target such as an unset ${VAR:-}, or enabled: false)
    disabled_probes: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    files: list[str] = field(default_factory=list)


def bundled_config_path() -> Path:
    """The responder.yaml shipped with the package (or at the top of a source checkout)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "bundled" / "responder.yaml", here.parent / "responder.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("no bundled responder.yaml found")


def _display(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def _yaml_files(base: Path, dirs: list[str]) -> list[Path]:
    out: list[Path] = []
    for folder in dirs:
        root = (base / folder) if not Path(folder).is_absolute() else Path(folder)
        if root.is_dir():
            out += sorted(p for p in root.rglob("*.y*ml") if p.suffix in (".yaml", ".yml") and not is_test_file(p))
    return out


def is_test_file(path: Path) -> bool:
    """`*_test.yaml` files next to the rules are pipeline tests (`responder test`), not configuration."""
    return path.stem.endswith("_test")


def _check_params(doc: YamlDoc, loc: tuple[str | int, ...], step: Step, renderer: Renderer,
                  catalog: dict[str, tuple[type[ActionProvider], str, type[StrictModel]]]) -> list[Problem]:
    """The action exists, its `with` fits the action's params model, and its templates compile."""
    if step.action not in catalog:
        known = ", ".join(sorted(catalog))
        return [doc.problem((*loc, "action"), f"unknown action {step.action!r} (known: {known})")]
    problems: list[Problem] = []
    try:
        renderer.check(step.with_)
        if step.when:
            renderer.check_expression(step.when)
    except TemplateError as exc:
        problems.append(doc.problem((*loc, "with"), f"template error: {exc}"))
    params_model = catalog[step.action][2]
    sub = YamlDoc(doc.path, doc.source, step.with_)
    _, errors = validate_doc(sub, params_model)
    for problem in errors:
        # a templated value is only known at run time: its type is checked then
        field_path = problem.field.split(".")
        value = step.with_.get(field_path[0]) if field_path else None
        if has_template(value):
            continue
        line, col = doc.position((*loc, "with", *(int(p) if p.isdigit() else p for p in field_path)))
        problems.append(Problem(doc.path, line, col, ".".join(map(str, (*loc, "with"))) + "." + problem.field,
                                problem.message))
    return problems


def _walk_steps(steps: list[Step], loc: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], Step]]:
    out = []
    for i, step in enumerate(steps):
        out.append(((*loc, i), step))
        out += _walk_steps(step.on_failure, (*loc, i, "on_failure"))
    return out


def _documents(base: Path, dirs: list[str], model: type[M], env: Mapping[str, str], loaded: LoadedConfig,
               problems: list[Problem]) -> Iterator[tuple[YamlDoc, M]]:
    """Each *.yaml under `dirs`, parsed and validated against `model`; problems are collected, not raised."""
    for file in _yaml_files(base, dirs):
        doc, found = load_yaml(file, _display(file, base), env)
        problems += found
        if doc is None:
            continue
        loaded.files.append(doc.path)
        parsed, found = validate_doc(doc, model)
        problems += found
        if parsed is not None:
            yield doc, parsed


def _load_rules(base: Path, config: ResponderConfig, env: Mapping[str, str], loaded: LoadedConfig,
                problems: list[Problem]) -> dict[str, tuple[YamlDoc, int]]:
    """Every rules/*.yaml; duplicate ids across files are problems. Returns where each rule is defined."""
    sites: dict[str, tuple[YamlDoc, int]] = {}
    for doc, rules in _documents(base, config.rules_dirs, RulesFile, env, loaded, problems):
        for i, rule in enumerate(rules.rules):
            if rule.id in sites:
                first_doc, first_index = sites[rule.id]
                first_line = first_doc.position(("rules", first_index, "id"))[0]
                problems.append(doc.problem(("rules", i, "id"), f"duplicate rule id {rule.id!r} "
                                            f"(first defined in {first_doc.path}:{first_line})"))
                continue
            sites[rule.id] = (doc, i)
            loaded.rules.append(rule)
    return sites


def _load_playbooks(base: Path, config: ResponderConfig, env: Mapping[str, str], loaded: LoadedConfig,
                    problems: list[Problem]) -> None:
    """Every playbooks/*.yaml; each step's action and params are checked against the action catalog."""
    sites: dict[str, YamlDoc] = {}
    renderer = Renderer()
    catalog = action_catalog()
    for doc, books in _documents(base, config.playbook_dirs, PlaybooksFile, env, loaded, problems):
        for i, book in enumerate(books.playbooks):
            if book.id in loaded.playbooks:
                problems.append(doc.problem(("playbooks", i, "id"), f"duplicate playbook id {book.id!r} "
                                            f"(first defined in {sites[book.id].path})"))
                continue
            loaded.playbooks[book.id] = book
            sites[book.id] = doc
            for section in ("steps", "on_resolve"):
                for loc, step in _walk_steps(getattr(book, section), ("playbooks", i, section)):
                    problems += _check_params(doc, loc, step, renderer, catalog)


def _raw(doc: YamlDoc, loc: tuple[str | int, ...]) -> object:
    node = doc.tree
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _load_probes(base: Path, config: ResponderConfig, env: Mapping[str, str], loaded: LoadedConfig,
                 problems: list[Problem]) -> None:
    """Every probes/*.yaml: unique ids, known status page components; empty targets disable, not fail."""
    sites: dict[str, tuple[YamlDoc, int]] = {}
    components = [c.id for c in config.status_page.components]
    for doc, probes in _documents(base, config.probe_dirs, ProbesFile, env, loaded, problems):
        for i, probe in enumerate(probes.probes):
            if probe.id in sites:
                first_doc, first_index = sites[probe.id]
                first_line = first_doc.position(("probes", first_index, "id"))[0]
                problems.append(doc.problem(("probes", i, "id"), f"duplicate probe id {probe.id!r} "
                                            f"(first defined in {first_doc.path}:{first_line})"))
                continue
            if probe.component is not None and probe.component not in components:
                known = ", ".join(components) or "none declared under status_page.components"
                problems.append(doc.problem(("probes", i, "component"), f"unknown status page component "
                                            f"{probe.component!r} (known: {known})"))
            sites[probe.id] = (doc, i)
            loaded.probes[probe.id] = probe
            empty = probe.empty_target()
            if not probe.enabled:
                loaded.disabled_probes[probe.id] = "enabled: false"
            elif empty is not None:
                loc: tuple[str | int, ...] = ("probes", i, *empty.split("."))
                line = doc.position(loc)[0]
                raw = _raw(doc, loc)
                source = f" ({raw} is unset)" if isinstance(raw, str) and "${" in raw else ""
                loaded.disabled_probes[probe.id] = f"{empty} is empty{source} at {doc.path}:{line}"


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None, *,
                rules_dirs: list[str] | None = None) -> LoadedConfig:
    """Load and cross-check everything; raise ConfigError listing every problem found.

    `rules_dirs` replaces the config's own (`responder replay --rules DIR`).
    """
    env = dict(os.environ if env is None else env)
    path = path or bundled_config_path()
    base = path.parent
    problems: list[Problem] = []
    doc, found = load_yaml(path, _display(path, base), env)
    problems += found
    config = ResponderConfig()
    if doc is not None:
        model, found = validate_doc(doc, ResponderConfig)
        problems += found
        config = model or config
        if model is not None and model.heartbeat.enabled and model.heartbeat.max_evaluation_age <= model.engine.tick:
            problems.append(doc.problem(("heartbeat", "max_evaluation_age"), "must exceed engine.tick: the engine "
                                        "evaluates once per tick, so a shorter age would withhold every heartbeat"))
    if rules_dirs is not None:
        config = config.model_copy(update={"rules_dirs": rules_dirs})
    loaded = LoadedConfig(config=config, path=path)
    rule_sites = _load_rules(base, config, env, loaded, problems)
    _load_playbooks(base, config, env, loaded, problems)
    _load_probes(base, config, env, loaded, problems)
    for rule in loaded.rules:
        if rule.playbook and rule.playbook not in loaded.playbooks:
            rdoc, i = rule_sites[rule.id]
            known = ", ".join(sorted(loaded.playbooks)) or "none loaded"
            problems.append(rdoc.problem(("rules", i, "playbook"), f"unknown playbook {rule.playbook!r} "
                                         f"(known: {known})"))
    if problems:
        raise ConfigError(sorted(set(problems)))
    share_equal_parts([*loaded.rules, *loaded.probes.values()])
    return loaded


def share_equal_parts(models: list[BaseModel]) -> None:
    """Make equal parts of these frozen models one shared object: with thousands of rules most `match.source`
    matchers, `when` conditions and `resolve` policies are alike, and each copy costs its own object, field dict
    and fields-set (a rule was ~3.4 KB). Parts are equal only with the same type, the same set fields and the
    same values, compared as Python values of the same types (secrets by their value, not their mask).

    The models are frozen, so no code can tell a shared part from a copy (as with `model_copy`, which shares its
    parts too); fields are replaced in the instance's own `__dict__`, as pydantic's `model_construct` fills it.
    """
    sharer = _PartSharer()
    for model in models:  # the models themselves stay as they are: only their parts are shared
        sharer.share_fields(model)


class _PartSharer:
    def __init__(self) -> None:
        self.seen: dict[object, BaseModel] = {}

    def share_fields(self, model: BaseModel) -> None:
        fields = model.__dict__
        for name, item in fields.items():
            shared = self.share(item)
            if shared is not item:
                fields[name] = shared

    def share(self, value: object) -> object:
        if isinstance(value, StrictModel):
            self.share_fields(value)
            try:
                identity = (type(value), frozenset(value.model_fields_set), self.key(value.__dict__))
            except TypeError:  # something unhashable: kept as it is
                return value
            return self.seen.setdefault(identity, value)
        if isinstance(value, list):
            value[:] = [self.share(item) for item in value]
        elif isinstance(value, dict):
            for k, item in value.items():
                value[k] = self.share(item)
        return value

    def key(self, value: object) -> object:
        if isinstance(value, BaseModel):
            return id(value)  # its own parts are shared already: the same object or not equal
        if isinstance(value, list | tuple):
            return type(value), tuple(self.key(item) for item in value)
        if isinstance(value, dict):
            return dict, tuple((k, self.key(item)) for k, item in value.items())
        hash(value)  # TypeError when it cannot be compared this way
        return type(value), value


def secret_values(config: ResponderConfig) -> list[str]:
    """Every secret in the config, for redaction in logs, errors and Sentry events."""
    out: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, SecretStr):
            if value.get_secret_value():
                out.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(config)
    if config.redis.url and "@" in config.redis.url:
        out.append(config.redis.url)
    return out
