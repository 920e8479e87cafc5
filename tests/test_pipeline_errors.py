"""An unexpected exception inside the pipeline is reported to Sentry once, without secrets; the daemon goes on."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import sentry_sdk

from responder.engine.evaluator import Decision, Evaluator
from responder.events import Event
from tests.conftest import PAYLOADS
from tests.fakes.sentry import FakeSentry

SECRET = "sentry-client-secret-must-not-leak-42"
RULES = """
rules:
  - id: api-error-rate
    match: {source: sentry, service: api}
    when: {value: "> 0.05"}
"""


class FailsOnce:
    """A test double for the evaluator: the first event raises, later ones go to the real evaluator."""

    def __init__(self, real: Evaluator) -> None:
        self.real = real
        self.calls = 0

    async def handle(self, event: Event) -> list[Decision]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError(f"evaluator exploded while holding {SECRET}")
        return await self.real.handle(event)

    async def tick(self) -> list[Decision]:
        return await self.real.tick()


async def test_pipeline_error_is_reported_once_and_the_event_is_retried(make_config: Any, make_app: Any) -> None:
    with FakeSentry() as fake:
        loaded = make_config({"responder.yaml": "ingest: {sentry: {client_secret: '${S}'}}\n"
                                                "engine: {claim_idle: 0s}\n",
                              "rules/r.yaml": RULES}, env={"S": SECRET})
        client, services = await make_app(loaded, env={"SENTRY_DSN": fake.dsn})
        double = FailsOnce(services.evaluator)
        services.consumer.evaluator = double  # type: ignore[assignment]

        body = (PAYLOADS / "sentry" / "metric_alert_error_rate_critical.json").read_bytes()
        headers = {"Content-Type": "application/json", "Sentry-Hook-Resource": "metric_alert",
                   "Sentry-Hook-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}
        event_id = (await (await client.post("/hooks/sentry", data=body, headers=headers)).json())["event_ids"][0]

        assert await services.consumer.poll(block_ms=100) == 1
        assert await services.incidents.store.list() == []  # it failed, and stays pending
        await services.consumer.tick()  # claimed again, processed by the real evaluator
        assert double.calls == 2
        assert len(await services.incidents.store.list()) == 1
        assert (await client.get("/healthz")).status == 200

        sentry_sdk.flush(timeout=5)
        errors = fake.errors()
        assert len(errors) == 1
        assert errors[0]["tags"]["event_id"] == event_id
        assert errors[0]["exception"]["values"][0]["type"] == "RuntimeError"
        assert all(SECRET.encode() not in raw for raw in fake.bodies)
        metrics = await (await client.get("/metrics")).text()
        assert 'responder_pipeline_errors_total{stage="engine"} 1.0' in metrics
