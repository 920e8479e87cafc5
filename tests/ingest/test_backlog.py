"""Backpressure: the stream's length cap never trims an event the engine has not handled; ingest says 503 first."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.conftest import PAYLOADS

ALERTMANAGER = json.loads((PAYLOADS / "alertmanager/firing.json").read_text())


def webhook(batch: int, alerts: int = 50) -> dict[str, Any]:
    body = copy.deepcopy(ALERTMANAGER)
    template = body["alerts"][0]
    body["alerts"] = []
    for n in range(alerts):
        alert = copy.deepcopy(template)
        alert["fingerprint"] = f"{batch:08x}{n:08x}"
        alert["labels"]["pod"] = f"pod-{batch}-{n}"
        body["alerts"].append(alert)
    return body


async def test_a_full_backlog_refuses_webhooks_instead_of_trimming_unhandled_events(make_config: Any,
                                                                                    make_app: Any) -> None:
    loaded = make_config({"responder.yaml": "engine: {stream_maxlen: 1000}\n"
                                            "ingest: {rate_limits: {per_ip: {requests: 1000000, per: 1m}}}\n"})
    client, services = await make_app(loaded)  # background=False: nothing consumes until the test polls
    accepted = 0
    refused = None
    for batch in range(40):
        response = await client.post("/hooks/alertmanager", json=webhook(batch))
        if response.status == 503:
            refused = response
            break
        assert response.status == 202
        accepted += (await response.json())["accepted"]
    assert refused is not None, "2,000 unhandled events were accepted into a stream capped at 1,000"
    body = await refused.json()
    assert body["field"] == "engine.stream_maxlen" and "behind" in body["error"]
    assert refused.headers["Retry-After"] == "5"
    assert 850 <= accepted <= 1000
    assert await services.events.length() == accepted, "nothing accepted was trimmed"

    handled = 0
    while polled := await services.consumer.poll(block_ms=0):  # the engine catches up...
        handled += polled
    assert handled == accepted
    again = await client.post("/hooks/alertmanager", json=webhook(999))
    assert again.status == 202  # ...and webhooks are taken again
