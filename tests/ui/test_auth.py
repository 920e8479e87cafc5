"""Dashboard auth: open pages without tokens, the read token guarding pages, sessions, CSRF and Origin checks."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from responder.clock import FakeClock
from responder.ui.auth import COOKIE
from tests.ui.conftest import READ, WRITE, csrf_of, login, open_incident


async def test_no_tokens_pages_open_and_actions_disabled(make_config: Any, make_app: Any) -> None:
    client, services = await make_app(make_config({}))
    incident = await open_incident(services)
    response = await client.get("/ui", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/incidents"
    response = await client.get("/ui/incidents")
    assert response.status == 200
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script" not in csp
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    page = await (await client.get(f"/ui/incidents/{incident.id}")).text()
    assert "Actions are disabled" in page and 'id="ack"' not in page
    response = await client.post(f"/ui/incidents/{incident.id}/ack", data={})
    assert response.status == 403 and "Writes are disabled" in await response.text()
    assert (await services.incidents.get(incident.id)).state.value == "triggered"
    login_page = await (await client.get("/ui/login")).text()
    assert "No API tokens are configured" in login_page


async def test_read_token_guards_pages(ui: Any) -> None:
    client, services = ui
    incident = await open_incident(services)
    for path in ("/ui/incidents", f"/ui/incidents/{incident.id}", "/ui/probes", "/ui/silences",
                 f"/ui/incidents/{incident.id}/postmortem.md"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        location = urlsplit(response.headers["Location"])
        assert location.path == "/ui/login" and parse_qs(location.query)["next"] == [path], path
    response = await client.get("/ui/incidents", headers={"Authorization": f"Bearer {READ}"})
    assert response.status == 200 and "bearer token (read)" in await response.text()
    response = await client.get("/ui/incidents", headers={"Authorization": "Bearer nope"})
    assert response.status == 401
    assert (await client.get("/ui/static/ui.css")).status == 200  # the stylesheet is public


async def test_login_sets_a_strict_http_only_signed_cookie(ui: Any) -> None:
    client, _ = ui
    response = await client.post("/ui/login", data={"token": "wrong", "next": "/ui/probes"}, allow_redirects=False)
    assert response.status == 401 and "neither the read nor the write token" in await response.text()
    assert COOKIE not in response.cookies
    response = await client.post("/ui/login", data={"token": WRITE, "name": "alice <b>", "next": "/ui/probes"},
                                 allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/probes?done=login"
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/ui" in header and "Max-Age=43200" in header
    assert "Secure" not in header  # plain http on 127.0.0.1
    payload = json.loads(base64.urlsafe_b64decode(response.cookies[COOKIE].value.split(".")[0] + "=="))
    assert payload["s"] == "write" and payload["n"] == "alice b"  # the name is cleaned
    assert WRITE not in header  # the token itself is never stored in the cookie
    page = await (await client.get("/ui/probes?done=login")).text()
    assert "user:alice b (write)" in page and "Logged in." in page


async def test_next_never_leaves_the_dashboard(ui: Any) -> None:
    client, _ = ui
    for target in ("https://evil.example/", "//evil.example/ui", "/api/v1/incidents", "/ui\\@evil"):
        response = await client.post("/ui/login", data={"token": READ, "next": target}, allow_redirects=False)
        assert response.headers["Location"] == "/ui/incidents?done=login", target


async def test_read_session_sees_but_cannot_act(ui: Any) -> None:
    client, services = ui
    incident = await open_incident(services)
    csrf = await login(client, READ)
    page = await (await client.get(f"/ui/incidents/{incident.id}")).text()
    assert 'id="ack"' not in page and "Log in with the write token" in page
    response = await client.post(f"/ui/incidents/{incident.id}/ack", data={"csrf": csrf})
    assert response.status == 403 and "needs the write token" in await response.text()
    assert (await services.incidents.get(incident.id)).state.value == "triggered"


async def test_anonymous_post_is_refused(ui: Any) -> None:
    client, services = ui
    incident = await open_incident(services)
    response = await client.post(f"/ui/incidents/{incident.id}/ack", data={})
    assert response.status == 401
    assert (await services.incidents.get(incident.id)).state.value == "triggered"


async def test_actions_need_the_csrf_field_and_a_same_site_origin(ui: Any) -> None:
    client, services = ui
    incident = await open_incident(services)
    csrf = await login(client)
    for data, headers in (({}, {}), ({"csrf": "forged"}, {}), ({"csrf": csrf}, {"Origin": "https://evil.example"}),
                          ({"csrf": csrf}, {"Origin": "null"}), ({"csrf": csrf}, {"Referer": "http://evil.example/x"})):
        response = await client.post(f"/ui/incidents/{incident.id}/ack", data=data, headers=headers)
        assert response.status == 403, (data, headers)
    assert (await services.incidents.get(incident.id)).state.value == "triggered"
    origin = str(client.make_url("")).rstrip("/")
    response = await client.post(f"/ui/incidents/{incident.id}/ack", data={"csrf": csrf}, headers={"Origin": origin},
                                 allow_redirects=False)
    assert response.status == 303
    assert (await services.incidents.get(incident.id)).state.value == "acknowledged"


async def test_bearer_write_token_acts_without_a_session(ui: Any) -> None:
    client, services = ui
    incident = await open_incident(services)
    response = await client.post(f"/ui/incidents/{incident.id}/ack", headers={"Authorization": f"Bearer {WRITE}"},
                                 allow_redirects=False)
    assert response.status == 303
    assert (await services.incidents.get(incident.id)).acknowledged_by == "api"


async def test_tampered_and_expired_sessions_are_ignored(ui: Any, clock: FakeClock) -> None:
    client, _ = ui
    await login(client, READ)
    cookie = next(c for c in client.session.cookie_jar if c.key == COOKIE)
    encoded, signature = cookie.value.split(".")
    payload = json.loads(base64.urlsafe_b64decode(encoded + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**payload, "s": "write"}).encode()).rstrip(b"=").decode()
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({COOKIE: cookie.value}, client.make_url("/ui/"))
    assert (await client.get("/ui/incidents", allow_redirects=False)).status == 200  # the genuine one works
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({COOKIE: f"{forged}.{signature}"}, client.make_url("/ui/"))
    response = await client.get("/ui/incidents", allow_redirects=False)
    assert response.status == 303  # a forged cookie is no session at all

    await login(client, READ)
    assert (await client.get("/ui/incidents", allow_redirects=False)).status == 200
    clock.advance(hours=12, seconds=1)
    assert (await client.get("/ui/incidents", allow_redirects=False)).status == 303


async def test_changing_the_tokens_ends_every_session(make_config: Any, make_app: Any, redis_url: str) -> None:
    first, _ = await make_app(make_config({"responder.yaml": f"server: {{api_tokens: {{read: '{READ}'}}}}\n"}))
    await login(first, READ)
    cookie = next(c for c in first.session.cookie_jar if c.key == COOKIE)
    other = "server: {api_tokens: {read: 'another-read-token-0123'}}\n"
    first.session.cookie_jar.clear()
    first.session.cookie_jar.update_cookies({COOKIE: cookie.value}, first.make_url("/ui/"))
    assert (await first.get("/ui/incidents", allow_redirects=False)).status == 200
    second, _ = await make_app(make_config({"responder.yaml": other}))
    second.session.cookie_jar.update_cookies({COOKIE: cookie.value}, second.make_url("/ui/"))
    assert (await second.get("/ui/incidents", allow_redirects=False)).status == 303


async def test_logout(ui: Any) -> None:
    client, _ = ui
    await login(client, READ)
    page = await (await client.get("/ui/incidents")).text()
    response = await client.post("/ui/logout", data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/login?done=logout"
    assert (await client.get("/ui/incidents", allow_redirects=False)).status == 303


async def test_behind_an_https_proxy_the_cookie_is_secure_and_the_public_origin_is_accepted(
        make_config: Any, make_app: Any) -> None:
    config = (f"server: {{public_url: 'https://responder.example', api_tokens: {{write: '{WRITE}'}}}}\n")
    client, services = await make_app(make_config({"responder.yaml": config}))
    incident = await open_incident(services)
    response = await client.post("/ui/login", data={"token": WRITE}, headers={"Origin": "https://responder.example"},
                                 allow_redirects=False)
    assert response.status == 303 and "Secure" in response.headers["Set-Cookie"]
    value = response.cookies[COOKIE].value
    client.session.cookie_jar.update_cookies({COOKIE: value}, client.make_url("/ui/"))  # the jar keeps Secure ones
    page = await (await client.get("/ui/incidents")).text()
    response = await client.post(f"/ui/incidents/{incident.id}/ack", data={"csrf": csrf_of(page)},
                                 headers={"Origin": "https://responder.example"}, allow_redirects=False)
    assert response.status == 303
    assert (await services.incidents.get(incident.id)).acknowledged_by == "ui"  # no name given at login


async def test_unreadable_forms_are_refused_with_a_4xx(ui: Any) -> None:
    client, services = ui
    incident = await open_incident(services)
    await login(client)
    for content_type, body in (("multipart/form-data", b"--x\r\n"), ("application/x-www-form-urlencoded; charset=nope",
                                                                     b"csrf=1"),
                               ("application/x-www-form-urlencoded; charset=utf-8", b"csrf=\xff\xfe")):
        response = await client.post(f"/ui/incidents/{incident.id}/ack", data=body,
                                     headers={"Content-Type": content_type})
        assert 400 <= response.status < 500, (content_type, response.status)
    response = await client.post("/ui/login", data=b"--x\r\n", headers={"Content-Type": "multipart/form-data"})
    assert response.status == 400
    assert (await services.incidents.get(incident.id)).state.value == "triggered"
