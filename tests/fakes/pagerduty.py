"""PagerDutyFake: the demo's PagerDuty stand-in (responder/demo/standins/pagerduty.py: Events API v2 alerts
and change events over TLS, in PagerDuty's shapes, alerts kept by dedup key) plus FakeVendor's fault
injection. Write `fake.ca` to a PEM file and give it to the provider as `ca_file`.

    async with PagerDutyFake(routing_key="R0ut1ng...") as fake:
        ...
        assert fake.alerts["api-error-rate|service=api"].status == "triggered"
"""

from __future__ import annotations

from responder.demo.standins.pagerduty import Alert, PagerDutyStandIn
from tests.fakes.vendor import FakeVendor

__all__ = ["Alert", "PagerDutyFake"]


class PagerDutyFake(PagerDutyStandIn, FakeVendor):
    """PagerDuty's Events API v2 with `fail_next` / `stall_next` (HTTP faults, e.g. 429)."""
