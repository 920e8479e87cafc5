"""/api/v1/silences on the real app and Redis: tokens, listing by state, create, expire, and field-named 4xx."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from responder.clock import FakeClock

WRITE = "write-token-0123456789"
READ = "read-token-0123456789"
AUTH = {"Authorization": f"Bearer {WRITE}"}


@pytest.fixture
async def client(make_config: Any, make_app: Any) -> Any:
    loaded = make_config({"responder.yaml": f"server: {{api_tokens: {{write: '{WRITE}', read: '{READ}'}}}}\n"})
    test_client, _ = await make_app(loaded)
    return test_client


async def post(client: Any, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, str | bytes) else {"json": body}
    response = await client.post("/api/v1/silences", headers=AUTH if headers is None else headers, **kwargs)
    return response.status, await response.json()


async def listing(client: Any, query: str = "", token: str = READ) -> Any:
    response = await client.get(f"/api/v1/silences{query}", headers={"Authorization": f"Bearer {token}"})
    return response.status, await response.json()


async def test_create_list_get_and_expire(client: Any, clock: FakeClock) -> None:
    start = clock.now()
    status, active = await post(client, {"matchers": {"service": "api", "labels": {"env": {"regex": "prod|staging"}}},
                                         "duration": "2h", "comment": "deploy", "created_by": "alice"})
    assert status == 201
    assert active["id"].startswith("sil-") and active["state"] == "active"
    assert active["matchers"] == {"service": {"eq": "api"}, "labels": {"env": {"regex": "prod|staging"}}}
    assert active["matchers_text"] == "service=api env=~prod|staging"
    assert active["starts_at"] == start.isoformat().replace("+00:00", "Z")
    assert active["active_until"] == (start + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    assert active["created_by"] == "user:alice" and active["comment"] == "deploy"

    status, scheduled = await post(client, {"matchers": "name=~\"disk.*\"", "starts_at": "2026-01-02T03:00:00+03:00",
                                            "duration": "30m"})
    assert status == 201 and scheduled["state"] == "scheduled" and scheduled["created_by"] == "api"
    assert scheduled["starts_at"] == scheduled["next_start"] == "2026-01-02T00:00:00Z"  # stored in UTC
    assert scheduled["ends_at"] == "2026-01-02T00:30:00Z"

    status, weekly = await post(client, {"matchers": "service=db", "recurrence": {
        "days": ["sat", "sun"], "start": "22:00", "end": "02:00", "timezone": "Europe/Berlin"}})
    assert status == 201 and weekly["recurrence"]["days"] == ["sat", "sun"] and "ends_at" not in weekly

    status, body = await listing(client)
    assert status == 200
    assert [s["id"] for s in body["silences"]] == [active["id"], scheduled["id"], weekly["id"]]
    assert all(s["suppressed"] == 0 for s in body["silences"])
    status, body = await listing(client, "?state=scheduled")
    assert [s["id"] for s in body["silences"]] == [scheduled["id"], weekly["id"]]

    detail = await (await client.get(f"/api/v1/silences/{active['id']}", headers=AUTH)).json()
    assert detail["suppressed_events"] == [] and detail["id"] == active["id"]

    clock.advance(minutes=10)
    response = await client.delete(f"/api/v1/silences/{active['id']}", headers=AUTH)
    assert response.status == 200
    ended = await response.json()
    assert ended["state"] == "expired" and ended["expired_by"] == "api"
    assert ended["ends_at"] == clock.now().isoformat().replace("+00:00", "Z")
    again = await client.delete(f"/api/v1/silences/{active['id']}", headers=AUTH)
    assert again.status == 200 and (await again.json())["ends_at"] == ended["ends_at"]  # idempotent
    _, body = await listing(client)
    assert active["id"] not in [s["id"] for s in body["silences"]]
    _, body = await listing(client, "?state=expired")
    assert [s["id"] for s in body["silences"]] == [active["id"]]
    _, body = await listing(client, "?state=all")
    assert len(body["silences"]) == 3

    clock.advance(hours=24, minutes=30)  # after the retention, an expired silence is gone
    _, body = await listing(client, "?state=expired")
    assert [s["id"] for s in body["silences"]] == [scheduled["id"]]  # ended by itself 10 minutes ago
    _, body = await listing(client, "?state=active,scheduled")
    assert [s["id"] for s in body["silences"]] == [weekly["id"]]


async def test_tokens(client: Any) -> None:
    status, body = await post(client, {"matchers": "service=api", "duration": "1h"}, headers={})
    assert status == 401 and body["field"] == "Authorization"
    status, body = await post(client, {"matchers": "service=api", "duration": "1h"},
                              headers={"Authorization": f"Bearer {READ}"})
    assert status == 401
    assert (await client.get("/api/v1/silences")).status == 401
    status, _ = await listing(client, token=WRITE)  # the write token reads too
    assert status == 200
    response = await client.delete("/api/v1/silences/sil-00000000")
    assert response.status == 401


async def test_unknown_id_is_a_404(client: Any) -> None:
    for response in (await client.delete("/api/v1/silences/sil-00000000", headers=AUTH),
                     await client.get("/api/v1/silences/sil-00000000", headers=AUTH)):
        assert response.status == 404
        assert await response.json() == {"error": "no silence 'sil-00000000'", "field": "id"}


@pytest.mark.parametrize(("body", "status", "field", "message"), [
    ({"matchers": {"name": {"regex": "("}}, "duration": "1h"}, 422, "matchers.name.regex",
     "invalid regular expression"),
    ({"matchers": 'name=~"("', "duration": "1h"}, 422, "matchers", "invalid regular expression"),
    ({"matchers": "service=api junk", "duration": "1h"}, 422, "matchers", "cannot read 'junk'"),
    ({"matchers": {}, "duration": "1h"}, 422, "matchers", "at least one matcher"),
    ({"matchers": "service=api", "duration": "soon"}, 422, "duration", "invalid duration"),
    ({"matchers": "service=api", "duration": "0s"}, 422, "duration", "longer than 0s"),
    ({"matchers": "service=api", "duraton": "1h"}, 422, "duraton", "unknown field"),
    ({"matchers": "service=api", "labels": {"env": "prod"}, "duration": "1h"}, 422, "labels", "unknown field"),
    ({"matchers": "service=api"}, 422, "ends_at", "give ends_at or duration"),
    ({"matchers": "service=api", "duration": "1h", "ends_at": "2026-01-01T05:00:00Z"}, 422, "duration", "not both"),
    ({"matchers": "service=api", "starts_at": "2026-01-01T05:00:00Z", "ends_at": "2026-01-01T04:00:00Z"}, 422,
     "ends_at", "after starts_at"),
    ({"matchers": "service=api", "starts_at": "2025-12-31T20:00:00Z", "ends_at": "2025-12-31T22:00:00Z"}, 422,
     "ends_at", "in the past"),
    ({"matchers": "service=api", "ends_at": "2026-01-01T05:00:00"}, 422, "ends_at", "timezone"),
    ({"matchers": "service=api", "recurrence": {"days": ["sun"], "start": "02:00", "end": "04:00",
                                                "timezone": "Mars/Olympus"}}, 422, "recurrence.timezone",
     "unknown time zone"),
    ({"matchers": "service=api", "recurrence": {"days": ["funday"], "start": "02:00", "end": "04:00"}}, 422,
     "recurrence.days", "unknown day"),
    ({"matchers": "service=api", "recurrence": {"days": ["sun"], "start": "25:00", "end": "04:00"}}, 422,
     "recurrence.start", "invalid time"),
    ({"matchers": "service=api", "recurrence": {"days": ["sun"], "start": "02:00", "end": "02:00"}}, 422,
     "recurrence", "same time"),
    ({"matchers": "service=api", "duration": "1h", "created_by": 7}, 422, "created_by", "non-empty string"),
    ("{not json", 400, "body", "not valid JSON"),
    ([1, 2], 400, "body", "JSON object"),
    ("", 400, "body", "JSON object is required"),
])
async def test_bad_requests_name_the_field(client: Any, body: Any, status: int, field: str, message: str) -> None:
    got, error = await post(client, body)
    assert (got, error["field"]) == (status, field), error
    assert message in error["error"]


async def test_bad_state_filter_and_delete_body(client: Any) -> None:
    status, body = await listing(client, "?state=paused")
    assert status == 400 and body["field"] == "state"
    _, created = await post(client, {"matchers": "service=api", "duration": "1h"})
    response = await client.delete(f"/api/v1/silences/{created['id']}", headers=AUTH, json={"who": "x"})
    assert response.status == 422 and (await response.json())["field"] == "who"
