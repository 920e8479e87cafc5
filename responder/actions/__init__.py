"""Action providers, listed explicitly: adding a vendor is one module here plus its tests."""

from __future__ import annotations

from responder.actions.base import ActionProvider
from responder.actions.builtin import BuiltinProvider
from responder.actions.fly import FlyProvider
from responder.actions.http import HttpProvider
from responder.actions.kubernetes import KubernetesProvider
from responder.actions.pagerduty import PagerDutyProvider
from responder.actions.railway import RailwayProvider
from responder.actions.shell import ShellProvider
from responder.actions.slack import SlackProvider
from responder.actions.statuspage import StatuspageProvider
from responder.actions.vercel import VercelProvider
from responder.config.base import StrictModel

__all__ = ["PROVIDERS", "action_catalog"]

PROVIDERS: tuple[type[ActionProvider], ...] = (
    BuiltinProvider, HttpProvider, ShellProvider, RailwayProvider, FlyProvider, VercelProvider, KubernetesProvider,
    PagerDutyProvider, SlackProvider, StatuspageProvider,
)


def action_catalog() -> dict[str, tuple[type[ActionProvider], str, type[StrictModel]]]:
    """Full action name -> (provider class, verb, params model)."""
    out: dict[str, tuple[type[ActionProvider], str, type[StrictModel]]] = {}
    for provider in PROVIDERS:
        for verb, params in provider.actions.items():
            full = verb if provider.name == "builtin" else f"{provider.name}.{verb}"
            out[full] = (provider, verb, params)
    return out
