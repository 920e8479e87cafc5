"""The operator dashboard at /ui (server-rendered, no build step)."""

from responder.ui.views import setup_ui_routes

__all__ = ["setup_ui_routes"]
