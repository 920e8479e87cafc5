"""Vendor providers whose configuration is known but whose calls arrive with the providers issue.

Their config models are real (so `responder.yaml` validates today) and their action names are
known (so playbooks that roll back or page validate). At run time a step of such a provider is
*skipped* when it has no credentials, and *fails* (so `on_failure` escalates) when credentials
are configured but this version cannot call the vendor yet: a rollback is never silently dropped.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, SecretStr

from responder.actions.base import ActionProvider, ActionResult, StepContext
from responder.config.base import StrictModel
from responder.errors import PermanentActionError

__all__ = ["VENDOR_PROVIDERS", "VendorConfig"]


class VendorConfig(StrictModel):
    base_url: str | None = Field(default=None, description="override the vendor API URL (tests, proxies)")

    def has_credentials(self) -> bool:
        return any(isinstance(v, SecretStr) and v.get_secret_value() for v in self.__dict__.values())


class AnyParams(StrictModel):
    """Parameters of an action whose schema arrives with its provider."""

    model_config = ConfigDict(extra="allow", frozen=True)


class RailwayConfig(VendorConfig):
    token: SecretStr | None = None


class FlyConfig(VendorConfig):
    token: SecretStr | None = None


class VercelConfig(VendorConfig):
    token: SecretStr | None = None
    team_id: str | None = None


class KubernetesConfig(VendorConfig):
    token: SecretStr | None = None
    kubeconfig: str | None = None
    in_cluster: bool = False

    def has_credentials(self) -> bool:
        return self.in_cluster or bool(self.kubeconfig) or super().has_credentials()


class PagerDutyConfig(VendorConfig):
    routing_key: SecretStr | None = None
    api_key: SecretStr | None = None


class SlackConfig(VendorConfig):
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    channel: str | None = Field(default=None, description="default channel for slack.post")


class StatuspageConfig(VendorConfig):
    api_key: SecretStr | None = None
    page_id: str | None = None


class ShellConfig(VendorConfig):
    enabled: bool = False

    def has_credentials(self) -> bool:
        return self.enabled


def _pending(name: str, config_model: type[VendorConfig], verbs: tuple[str, ...]) -> type[ActionProvider]:
    async def run(self: ActionProvider, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        raise PermanentActionError(f"provider {name} is configured but {name}.{verb} is not available in this "
                                   "version of responder")

    return type(f"{name.title()}Provider", (ActionProvider,), {
        "name": name, "Config": config_model, "actions": dict.fromkeys(verbs, AnyParams), "run": run,
        "__doc__": f"{name}: credentials and action names (calls arrive with the providers issue).",
    })


VENDOR_PROVIDERS: tuple[type[ActionProvider], ...] = (
    _pending("railway", RailwayConfig, ("rollback", "restart", "redeploy")),
    _pending("fly", FlyConfig, ("restart", "rollback")),
    _pending("vercel", VercelConfig, ("rollback", "promote")),
    _pending("kubernetes", KubernetesConfig, ("restart", "rollback", "scale")),
    _pending("pagerduty", PagerDutyConfig, ("trigger", "acknowledge", "resolve", "change")),
    _pending("slack", SlackConfig, ("post", "update")),
    _pending("statuspage", StatuspageConfig, ("set", "incident")),
    _pending("shell", ShellConfig, ("run",)),
)
