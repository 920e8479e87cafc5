"""GET /api/v1/openapi.json: the OpenAPI 3.1 document of the HTTP API (responder/api/openapi.yaml, public)."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from aiohttp import web
from ruamel.yaml import YAML

__all__ = ["openapi_document", "setup_openapi_routes"]


@functools.cache
def _serialized() -> str:
    text = resources.files("responder.api").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return json.dumps(YAML(typ="safe", pure=True).load(text), indent=1)


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (YAML anchors expanded)."""
    document: dict[str, Any] = json.loads(_serialized())
    return document


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(text=_serialized(), content_type="application/json")


def setup_openapi_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", get_openapi)
