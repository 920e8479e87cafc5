"""Reading YAML fast (parser events straight into plain data) must give exactly what the round-trip loader gave,
keep every problem's file:line:col, and share equal parts of the loaded models without mixing different ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from ruamel.yaml import YAML

from responder.config.base import StrictModel
from responder.config.loader import load_config, share_equal_parts
from responder.config.yamlfile import LazyTree, _plain, _substitute, load_yaml

SAME = [
    "",
    "a:\n",
    "a: 1\nb: 1.5\nc: ~\nd: true\ne: 'yes'\nf: yes\ng: 0o17\nh: 0x1F\ni: 1e3\nj: 2026-01-01\nk: 10:30\n",
    "t: 2026-01-01T10:00:00Z\nu: .inf\nv: -.inf\nw: ''\nx: \"1\"\n",
    "a: |\n  line1\n  line2\nb: >-\n  folded\n  text\nc: \"esc\\taped\"\n",
    "- &a {k: v, n: [1, 2]}\n- *a\n- [x, [y, [z]]]\n",
    "rules:\n  - {id: a, match: {source: probe}, when: {status: firing}}\n  - id: b\n    group_by: [labels.x]\n",
    "key: ${VAR:-default}\nother: ${UNSET:-}\n",
]
# read by the safe loader instead (merge keys, tags, non-string keys, directives): same data, up to key order
UNUSUAL = [
    "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n",
    "1: one\n2.5: x\nnull: z\n",
    "%YAML 1.2\n---\na: 1\n",
    "b: !!binary aGVsbG8=\n",
]


def same_types(ours: Any, theirs: Any) -> bool:
    """Each of our values is of the round-trip loader's type, or the plain type it subclasses (TimeStamp is a
    datetime, ScalarFloat a float)."""
    if isinstance(theirs, dict):
        return type(ours) is dict and all(same_types(ours[k], v) for k, v in theirs.items())
    if isinstance(theirs, list):
        return type(ours) is list and all(same_types(a, b) for a, b in zip(ours, theirs, strict=True))
    return isinstance(theirs, type(ours))


@pytest.mark.parametrize("text", SAME + UNUSUAL)
def test_data_is_the_round_trip_loaders(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    env = {"VAR": "set"}
    doc, problems = load_yaml(path, "f.yaml", env)
    assert doc is not None and not problems
    expected = _substitute(_plain(YAML(typ="rt").load(text)) or {}, env, (), [])
    assert doc.data == expected and same_types(doc.data, expected)
    if text in SAME:
        assert list(doc.data) == list(expected)  # key order too
        assert isinstance(doc.source, LazyTree)  # nothing parsed for positions until one is asked for


@pytest.mark.parametrize(("text", "where"), [
    ("a: 1\na: 2\n", "f.yaml:2:1: (syntax)"),  # duplicate keys are refused, as they were
    ("a: [1, 2\n", "f.yaml:2:1: (syntax)"),
    ("k: *nope\n", "f.yaml:1:4: (syntax)"),
])
def test_problems_read_as_before(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    doc, problems = load_yaml(path, "f.yaml", {})
    assert doc is None and [str(p).startswith(where) for p in problems] == [True], problems


def test_validation_problems_keep_their_line(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "responder.yaml").write_text("{}\n")
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - id: good\n    match: {source: probe}\n  - id: bad\n    match: {source: probe}\n"
        "    severity: loud\n")
    with pytest.raises(Exception) as caught:
        load_config(tmp_path / "responder.yaml", env={})
    assert "rules/r.yaml:6:15: rules.1.severity:" in str(caught.value)


class Part(StrictModel):
    name: str = "x"
    token: SecretStr | None = None
    tags: list[str] = []


class Whole(StrictModel):
    a: Part
    b: Part
    parts: list[Part] = []


def test_equal_parts_are_shared_and_different_ones_kept_apart() -> None:
    wholes = [Whole(a=Part(name="same"), b=Part(name="same", token=SecretStr("one")),
                    parts=[Part(), Part(name="x")]),
              Whole(a=Part(name="same"), b=Part(name="same", token=SecretStr("two")), parts=[Part()])]
    before = [w.model_dump() for w in wholes]
    share_equal_parts(list[Any](wholes))
    assert [w.model_dump() for w in wholes] == before
    assert wholes[0].a is wholes[1].a
    assert wholes[0].b is not wholes[1].b  # different secrets, the same mask
    assert wholes[0].parts[0] is wholes[1].parts[0]
    assert wholes[0].parts[1] is not wholes[0].parts[0]  # the same value, but `name` was set explicitly
    assert wholes[0].parts[1].model_fields_set == {"name"}
