"""kubernetes: configuration and action names (the calls are being written)."""

from __future__ import annotations

from pydantic import SecretStr

from responder.actions.base import VendorConfig
from responder.actions.pending import AnyParams, PendingProvider

__all__ = ["KubernetesConfig", "KubernetesProvider"]


class KubernetesConfig(VendorConfig):
    token: SecretStr | None = None
    kubeconfig: str | None = None
    in_cluster: bool = False

    def has_credentials(self) -> bool:
        return self.in_cluster or bool(self.kubeconfig) or super().has_credentials()


class KubernetesProvider(PendingProvider):
    name = "kubernetes"
    Config = KubernetesConfig
    actions = dict.fromkeys(("restart", "rollback", "scale",), AnyParams)
