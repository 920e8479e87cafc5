"""YAML files with node positions: load, substitute ${ENV}, and map pydantic errors to file:line:col.

ruamel.yaml's round-trip loader keeps a (line, col) for every key and sequence item and refuses
duplicate keys. `YamlDoc.position(loc)` walks a pydantic error location down that tree and stops
at the deepest node that exists (a missing key points at the mapping that lacks it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

__all__ = ["Problem", "YamlDoc", "load_yaml", "validate_doc"]

M = TypeVar("M", bound=BaseModel)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


@dataclass(frozen=True, order=True)
class Problem:
    """One configuration problem, printed as `file:line:col: field: message` (1-based)."""

    file: str
    line: int
    col: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.field}: {self.message}"


@dataclass
class YamlDoc:
    """A parsed YAML file: plain data (after env substitution) plus the position tree."""

    path: str
    tree: Any  # ruamel CommentedMap/Seq: the positions
    data: Any  # plain dicts/lists/scalars: what models validate

    def position(self, loc: Sequence[str | int]) -> tuple[int, int]:
        """1-based (line, col) of the deepest node on `loc` that exists."""
        node = self.tree
        line, col = 0, 0
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                line, col = node.lc.value(part) if not isinstance(node[part], CommentedMap | CommentedSeq) else \
                    node.lc.key(part)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line, col = node.lc.item(part)
                node = node[part]
            else:
                if (line, col) == (0, 0) and hasattr(node, "lc"):
                    line, col = node.lc.line, node.lc.col
                break
        return line + 1, col + 1

    def problem(self, loc: Sequence[str | int], message: str) -> Problem:
        line, col = self.position(loc)
        return Problem(self.path, line, col, ".".join(str(p) for p in loc) or "(file)", message)


def _plain(node: Any) -> Any:
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    if isinstance(node, str):  # ruamel's ScalarString subclasses -> str
        return str(node)
    return node


def _substitute(node: Any, env: Mapping[str, str], loc: tuple[str | int, ...], missing: list[tuple[Any, str]]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, env, (*loc, k), missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, (*loc, i), missing) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            missing.append((loc, name))
            return ""

        result = _ENV_REF.sub(repl, node)
        # `key: ${VAR:-}` with VAR unset means "not configured", not "configured as empty"
        return None if result == "" and _ENV_REF.fullmatch(node.strip()) else result
    return node


def load_yaml(path: Path, display: str, env: Mapping[str, str]) -> tuple[YamlDoc | None, list[Problem]]:
    """Parse one file; syntax errors, duplicate keys and unset ${VARS} become problems."""
    yaml = YAML(typ="rt")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Problem(display, 1, 1, "(file)", f"cannot read: {exc.strerror or exc}")]
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
        return None, [Problem(display, line, col, "(syntax)", message.replace("\n", " "))]
    doc = YamlDoc(display, tree, None)
    missing: list[tuple[Any, str]] = []
    doc.data = _substitute(_plain(tree) if tree is not None else {}, env, (), missing)
    problems = [doc.problem(loc, f"environment variable {name} is not set (use ${{{name}:-}} for optional)")
                for loc, name in missing]
    return doc, problems


def _error_message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "field required"
    return message.removeprefix("Value error, ")


def validate_doc(doc: YamlDoc, model: type[M], context: dict[str, Any] | None = None) -> tuple[M | None, list[Problem]]:
    """Validate a document against a model; every error names its file, line, column and field."""
    try:
        return model.model_validate(doc.data, context=context), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            if error["type"] == "missing":
                where = doc.problem(loc[:-1], "")
                problems.append(Problem(doc.path, where.line, where.col, ".".join(map(str, loc)), "field required"))
            else:
                problems.append(doc.problem(loc, _error_message(error)))
        return None, sorted(set(problems))
