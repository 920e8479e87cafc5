"""The OpenAPI document: valid OpenAPI 3.1, served at /api/v1/openapi.json, and in step with the app's routes —
every route the aiohttp app registers is documented, and every documented operation is a route."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp import web
from openapi_spec_validator import validate

from responder.api.openapi import openapi_document
from responder.app import create_app
from responder.config.loader import load_config
from tests.conftest import write_config
from tests.fuzz.world import LiveApp

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_GROUP = re.compile(r"\(\?P<(\w+)>([^()]*)\)")


def app_routes(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path) for every route; a parameter restricted to alternatives (`{action:ack|resolve}`) is one path
    per alternative. HEAD, which aiohttp adds beside every GET, is left out."""
    out: set[tuple[str, str]] = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        info = route.resource.get_info()
        if "path" in info:
            out.add((route.method, info["path"]))
            continue
        paths = [info["formatter"]]
        for name, body in _GROUP.findall(info["pattern"].pattern):
            choices = body.split("|")
            if all(re.fullmatch(r"[\w.\-]+", c) for c in choices):
                paths = [p.replace("{" + name + "}", c) for p in paths for c in choices]
        out.update((route.method, p) for p in paths)
    return out


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item if method in METHODS}


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_route_is_documented_and_every_documented_operation_exists(tmp_path: Path) -> None:
    app = create_app(load_config(write_config(tmp_path, {"responder.yaml": "{}\n"}), env={}), env={})
    routes, doc = app_routes(app), documented(openapi_document())
    assert routes - doc == set(), "routes missing from responder/api/openapi.yaml"
    assert doc - routes == set(), "documented operations the app does not have"


def test_every_api_error_response_is_the_error_schema() -> None:
    doc = openapi_document()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method not in METHODS or path.startswith("/ui"):
                continue
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    ref = response.get("$ref", "")
                    target = doc["components"]["responses"][ref.rsplit("/", 1)[-1]] if ref else response
                    schema = target["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_the_document_is_served(live: LiveApp) -> None:
    reply = live.request("GET", "/api/v1/openapi.json")  # public: no token
    assert reply.status == 200 and reply.content_type == "application/json"
    assert reply.json() == openapi_document()
