"""Action providers, listed explicitly."""

from __future__ import annotations

from responder.actions.base import ActionProvider
from responder.actions.builtin import BuiltinProvider
from responder.actions.http import HttpProvider
from responder.actions.vendors import VENDOR_PROVIDERS
from responder.config.base import StrictModel

__all__ = ["PROVIDERS", "action_catalog"]

PROVIDERS: tuple[type[ActionProvider], ...] = (BuiltinProvider, HttpProvider, *VENDOR_PROVIDERS)


def action_catalog() -> dict[str, tuple[type[ActionProvider], str, type[StrictModel]]]:
    """Full action name -> (provider class, verb, params model)."""
    out: dict[str, tuple[type[ActionProvider], str, type[StrictModel]]] = {}
    for provider in PROVIDERS:
        for verb, params in provider.actions.items():
            full = verb if provider.name == "builtin" else f"{provider.name}.{verb}"
            out[full] = (provider, verb, params)
    return out
