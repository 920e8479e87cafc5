"""RailwayFake: the demo's Railway stand-in (responder/demo/standins/railway.py: the GraphQL endpoint with
projects, services and deployments, in Railway's shapes) plus FakeVendor's fault injection.

    fake = RailwayFake(token="t0k3n-secret")
    api = fake.service("api")                       # id of a new service in fake.project_id
    old = fake.add_deployment("api", status="REMOVED")
    cur = fake.add_deployment("api", status="SUCCESS")
    ...
    fake.mutations == [("deploymentRollback", {"id": old})]
    fake.fail_graphql("Not Authorized")             # the next GraphQL request answers this error
"""

from __future__ import annotations

from responder.demo.standins.railway import Deployment as FakeDeployment
from responder.demo.standins.railway import RailwayStandIn
from tests.fakes.vendor import FakeVendor

__all__ = ["FakeDeployment", "RailwayFake"]


class RailwayFake(RailwayStandIn, FakeVendor):
    """Railway's GraphQL API with `fail_next` / `stall_next` (HTTP faults) and `fail_graphql` (GraphQL errors)."""
