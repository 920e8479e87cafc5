"""YAML files with node positions: load, substitute ${ENV}, and map pydantic errors to file:line:col.

A file is read from the events of ruamel.yaml's safe parser (libyaml's, when ruamel.yaml.clib is installed),
built straight into plain dicts and lists with ruamel's own resolver and constructor for the scalars: about
5x faster than the round-trip loader, and no node graph (for 10,000 rules that graph peaked at ~70 MB, and
the memory it spread over stayed with the process). Anything unusual (explicit tags, merge keys, non-string
or duplicate keys, several documents, directives) is read by ruamel's safe loader instead. Both read YAML 1.2
like the round-trip loader and refuse duplicate keys. Only when a position is asked for (a problem to report)
is the file parsed again with the round-trip loader, which keeps a (line, col) for every key and sequence
item: `YamlDoc.position(loc)` walks a pydantic error location down that tree and stops at the deepest
node that exists (a missing key points at the mapping that lacks it). A file the safe loader refuses is
parsed with the round-trip loader straight away, so syntax problems read as they always did.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import ScalarNode

__all__ = ["Problem", "YamlDoc", "load_yaml", "validate_doc"]

M = TypeVar("M", bound=BaseModel)
_INTERN_UP_TO = 64  # characters: names, ids and label values, not templates or descriptions
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


class LazyTree:
    """The round-trip parse of a file's text, made on first use (only problems need positions)."""

    __slots__ = ("_node", "_text")

    def __init__(self, text: str) -> None:
        self._text: str | None = text
        self._node: Any = None

    def node(self) -> Any:
        if self._text is not None:
            self._node = YAML(typ="rt").load(self._text)
            self._text = None
        return self._node


@dataclass
class YamlDoc:
    """A parsed YAML file: plain data (after env substitution) plus the position tree."""

    path: str
    source: Any  # ruamel CommentedMap/Seq (the positions), or a LazyTree that parses them on first use
    data: Any  # plain dicts/lists/scalars: what models validate

    @property
    def tree(self) -> Any:
        """The round-trip tree: every key's and item's (line, col)."""
        return self.source.node() if isinstance(self.source, LazyTree) else self.source

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


def _plain_keys(node: Any) -> Any:
    """The safe loader's output with every mapping key a str, as `_plain` makes the round-trip tree's. Short
    strings are interned: thousands of rules repeat the same sources, severities and label names, and each
    occurrence would otherwise stay its own object inside the models."""
    if isinstance(node, dict):
        return {sys.intern(k if isinstance(k, str) else str(k)): _plain_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain_keys(v) for v in node]
    if isinstance(node, str) and len(node) <= _INTERN_UP_TO:
        return sys.intern(node)
    return node


class _Unusual(Exception):
    """Something the event loader leaves to ruamel's safe loader."""


_NO_KEY = object()
_STR_TAG = "tag:yaml.org,2002:str"
_SCALAR_TAGS = frozenset({"tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
                          "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"})


def _short(text: str) -> str:
    return sys.intern(text) if len(text) <= _INTERN_UP_TO else text


class _EventLoader:
    """Builds one document from the parser's events (see the module docstring); mapping keys are str and short
    strings interned, as `_plain_keys` makes them. Raises _Unusual for what ruamel's safe loader should read."""

    def __init__(self) -> None:
        self.yaml = YAML(typ="safe")  # one per load: load_config may run in several threads
        self.resolver, self.constructor = self.yaml.resolver, self.yaml.constructor
        self.anchors: dict[str, Any] = {}
        self.stack: list[list[Any]] = []  # [dict or list being filled, the key waiting for its value (dicts)]
        self.root: list[Any] = []
        self.documents = 0

    def load(self, text: str) -> Any:
        handlers = {ScalarEvent: self._scalar, MappingStartEvent: self._start, SequenceStartEvent: self._start,
                    MappingEndEvent: self._end, SequenceEndEvent: self._end, AliasEvent: self._alias,
                    DocumentStartEvent: self._document}
        for event in self.yaml.parse(text):
            handler = handlers.get(type(event))
            if handler is not None:
                handler(event)
        return self.root[0] if self.root else None

    def _add(self, value: Any, collection: bool) -> None:
        if not self.stack:
            self.root.append(value)
            return
        top = self.stack[-1]
        if type(top[0]) is list:
            top[0].append(value)
        elif top[1] is _NO_KEY:
            if collection or type(value) is not str:
                raise _Unusual("a key that is not a string")
            if value in top[0]:
                raise _Unusual("a duplicate key")
            top[1] = sys.intern(value)
        else:
            top[0][top[1]] = value
            top[1] = _NO_KEY

    @staticmethod
    def _untagged(event: Any) -> None:
        if event.ctag is not None and str(event.ctag) != "!":
            raise _Unusual("an explicit tag")

    def _scalar(self, event: Any) -> None:
        self._untagged(event)
        tag = str(self.resolver.resolve(ScalarNode, event.value, event.implicit))
        if tag == _STR_TAG:
            value: Any = _short(event.value)
        elif tag in _SCALAR_TAGS:
            value = self.constructor.yaml_constructors[tag](self.constructor, ScalarNode(tag, event.value, None, None))
        else:  # a merge key, `=`
            raise _Unusual(tag)
        if event.anchor is not None:
            self.anchors[event.anchor] = value
        self._add(value, False)

    def _start(self, event: Any) -> None:
        self._untagged(event)
        collection: Any = {} if type(event) is MappingStartEvent else []
        if event.anchor is not None:
            self.anchors[event.anchor] = collection
        self._add(collection, True)
        self.stack.append([collection, _NO_KEY])

    def _end(self, _event: Any) -> None:
        self.stack.pop()

    def _alias(self, event: Any) -> None:
        if event.anchor not in self.anchors:
            raise _Unusual("an unknown alias")
        value = self.anchors[event.anchor]
        self._add(value, isinstance(value, dict | list))

    def _document(self, event: Any) -> None:
        self.documents += 1
        if self.documents > 1 or event.version is not None or event.tags:
            raise _Unusual("several documents or a directive")


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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Problem(display, 1, 1, "(file)", f"cannot read: {exc.strerror or exc}")]
    try:
        try:
            plain = _EventLoader().load(text)
        except _Unusual:
            plain = _plain_keys(YAML(typ="safe").load(text))
        doc = YamlDoc(display, LazyTree(text), None)
    except YAMLError:  # the round-trip loader says what is wrong, and where, as it always did
        try:
            tree = YAML(typ="rt").load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            message = " ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
            return None, [Problem(display, line, col, "(syntax)", message.replace("\n", " "))]
        plain, doc = _plain(tree), YamlDoc(display, tree, None)
    missing: list[tuple[Any, str]] = []
    doc.data = _substitute(plain if plain is not None else {}, env, (), missing)
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
