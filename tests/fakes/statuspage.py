"""StatuspageFake: the demo's Statuspage stand-in (responder/demo/standins/statuspage.py: REST API v1 for one
page, components and realtime incidents, in Atlassian's shapes) plus FakeVendor's fault injection.

    fake = StatuspageFake(api_key="k3y", components=["API", "Web app"])
    ...
    assert fake.component("API")["status"] == "operational"
"""

from __future__ import annotations

from responder.demo.standins.statuspage import StatuspageStandIn
from tests.fakes.vendor import FakeVendor

__all__ = ["StatuspageFake"]


class StatuspageFake(StatuspageStandIn, FakeVendor):
    """Statuspage with `fail_next` / `stall_next` (HTTP faults, e.g. 420 rate limiting)."""
