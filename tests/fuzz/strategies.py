"""Hypothesis strategies: realistic payloads mutated, random JSON, hostile header values, bodies that break parsers."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

#: text that makes parsers and templates work: non-BMP, RTL, combining marks, NUL, surrogate-ish, digits of
#: other scripts (str.isdigit() is true for them, int() is not always)
ODD_TEXT = ["", " ", "\x00", "null", "[]", "{}", "0", "-1", "1e309", "NaN", "²³", "١٢٣", "\U0001d7d8\U0001d7d9",
            "\u202e", "e\u0301",
            "💥" * 10, "{{ 7*7 }}", "${HOME}", "<script>x</script>", "' OR 1=1 --", "../../etc/passwd", "%00", "\\",
            "9" * 5000, "a" * 20000]

text = st.one_of(st.text(max_size=40), st.sampled_from(ODD_TEXT))
#: for URLs: aiohttp's HTTP parser refuses a request line over 8190 bytes before the app sees it (plain-text 400)
url_text = st.one_of(st.text(max_size=40), st.sampled_from([t for t in ODD_TEXT if len(t) < 1000]))
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63, max_value=2**80),
                      st.floats(allow_nan=True, allow_infinity=True), text)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out += _paths(value, (*prefix, index))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return doc


def _delete(doc: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return {}
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    return doc


MUTATIONS = ("delete", "retype", "null", "huge", "unicode", "deep", "empty-list", "empty-object", "number-text")


@st.composite
def mutated(draw: st.DrawFn, original: Any, max_mutations: int = 4) -> Any:
    """`original` with 1..max_mutations random edits: fields deleted, retyped, nulled, grown, nested, emptied."""
    doc = copy.deepcopy(original)
    for _ in range(draw(st.integers(min_value=1, max_value=max_mutations))):
        path = draw(st.sampled_from(_paths(doc)))
        kind = draw(st.sampled_from(MUTATIONS))
        if kind == "delete":
            doc = _delete(doc, path)
        elif kind == "retype":
            doc = _replace(doc, path, draw(json_value))
        elif kind == "null":
            doc = _replace(doc, path, None)
        elif kind == "huge":
            doc = _replace(doc, path, draw(st.sampled_from(["x" * 30000, "é" * 10000, list(range(3000))])))
        elif kind == "unicode":
            doc = _replace(doc, path, draw(st.text(min_size=1, max_size=30)) + draw(st.sampled_from(ODD_TEXT[:20])))
        elif kind == "deep":
            value: Any = draw(json_leaf)
            for _ in range(draw(st.sampled_from([50, 500]))):
                value = {"a": value} if draw(st.booleans()) else [value]
            doc = _replace(doc, path, value)
        elif kind == "empty-list":
            doc = _replace(doc, path, [])
        elif kind == "empty-object":
            doc = _replace(doc, path, {})
        else:
            doc = _replace(doc, path, draw(st.sampled_from(["1", "1.5", "-0", "1e400", "0x10", "٣", 10**30])))
    return doc


@st.composite
def json_body(draw: st.DrawFn, doc: Any) -> bytes:
    """`doc` serialized, or one of the ways a body goes wrong: duplicate keys, truncation, bad UTF-8, deep
    nesting, NaN literals, a BOM, trailing garbage, or nothing at all."""
    text = json.dumps(doc, allow_nan=True)
    how = draw(st.sampled_from(["plain", "plain", "plain", "duplicate-key", "truncated", "bad-utf8", "deep-array",
                                "deep-object", "bom", "trailing", "empty", "whitespace", "latin1"]))
    if how == "duplicate-key" and text.startswith("{") and text != "{}":
        key = draw(st.sampled_from([*doc, "x"])) if isinstance(doc, dict) and doc else "x"
        extra = json.dumps(draw(json_value), allow_nan=True)
        first = draw(st.booleans())
        text = ("{" + json.dumps(key) + ": " + extra + ", " + text[1:]) if first else \
            (text[:-1] + ", " + json.dumps(key) + ": " + extra + "}")
    elif how == "truncated" and len(text) > 1:
        text = text[: draw(st.integers(min_value=1, max_value=len(text) - 1))]
    elif how == "bad-utf8":
        cut = draw(st.integers(min_value=0, max_value=len(text)))
        return text[:cut].encode() + b"\xff\xfe\xc3" + text[cut:].encode()
    elif how == "deep-array":
        depth = draw(st.sampled_from([1000, 20000, 30000]))
        return b"[" * depth + b"]" * depth
    elif how == "deep-object":
        depth = draw(st.sampled_from([1000, 6000]))
        return b'{"a":' * depth + b"1" + b"}" * depth
    elif how == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    elif how == "trailing":
        text += draw(st.sampled_from(["x", "}", " {}", "\x00"]))
    elif how == "empty":
        return b""
    elif how == "whitespace":
        return b" \n\t "
    elif how == "latin1":
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "ignore").encode("latin-1", "replace")
    return text.encode("utf-8", "surrogatepass")


HEADER_VALUES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    st.sampled_from(["", " ", "null", "Bearer", "Bearer ", "Basic", "Basic !!!", "v1=", "v0=", "sha256=",
                     "9" * 5000, "-1", "1e10", "0x10", "1.5"]),
    # UTF-8 on the wire (obs-text): str.isdigit() is true for some of these
    st.sampled_from(["²³", "١٢٣٤٥٦٧٨٩٠", "\U0001d7d9\U0001d7da\U0001d7db", "é", "💥"]).map(lambda s: s.encode()),
    # bytes that are not UTF-8 (aiohttp hands them over as surrogate escapes)
    st.sampled_from([b"\x80", b"\xff\xfe", b"Bearer \xe9", b"v1=\xc3"]),
)

CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "application/json; charset=latin-1",
                 "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/vnd.api+json", "application/xml", "", "*/*", "application/json;;;", "garbage"]


@st.composite
def extra_headers(draw: st.DrawFn) -> list[tuple[str, str | bytes]]:
    names = st.sampled_from(["X-Forwarded-For", "X-Request-Id", "Accept", "Accept-Encoding", "Origin", "Referer",
                             "Cookie", "X-Custom", "Content-Encoding", "Transfer-Encoding-Not", "Expect-Not"])
    encodings = st.tuples(st.just("Content-Encoding"),
                          st.sampled_from(["gzip", "deflate", "br", "zstd", "identity", "GZIP"]))
    return draw(st.lists(st.tuples(names, HEADER_VALUES) | encodings, max_size=3))
