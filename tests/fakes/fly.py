"""FlyFake: the Fly.io Machines API endpoints fly.restart / fly.rollback use, plus the GraphQL release history.

Shapes follow fly.io/docs/machines/api/machines-resource (and the example responses in superfly/docs):

- `GET  /v1/apps/{app}/machines` -> JSON array of Machines (`id`, `name`, `state`, `region`, `instance_id`,
  `private_ip`, `config` {`image`, `metadata.fly_process_group`, `guest`, `services`...}, `image_ref`,
  `created_at`, `updated_at`, `events`); 404 `{"error": ...}` for an unknown app.
- `GET  /v1/apps/{app}/machines/{id}` -> the Machine.
- `POST /v1/apps/{app}/machines/{id}` (update) -> body `{"config": {...whole config...}, "skip_launch"?, ...}`;
  answers the Machine with a new `instance_id`. A started Machine goes to `replacing` (rebooting on the new
  config); a stopped one with `skip_launch` stays stopped.
- `POST /v1/apps/{app}/machines/{id}/restart` (query `timeout`, `signal`) -> `{"ok": true}`; the Machine
  goes to `stopping` and comes back `started`.
- `GET  /v1/apps/{app}/machines/{id}/wait?state=started&timeout=<int seconds>[&instance_id=]` -> 200
  `{"ok": true}` when the Machine is in that state, 408 `{"error": "deadline_exceeded: ..."}` when not.
  A Machine in transition becomes `started` on a wait unless `boot_waits[id]` (answer 408 that many times
  first) or it is in `stuck` (never starts). Machines in `leased` answer 409 to restart and update.
- `POST /graphql` -> `app(name) { releasesUnprocessed(first) { nodes { id version status imageRef ... } } }`,
  newest first; an unknown app answers HTTP 200 with `errors` (GraphQL style).

The fake logs `("restart"|"update"|"started", machine id)` in `log` and keeps `max_in_transit`, the largest
number of the app's Machines that were going down/up at the same moment (1 = strictly one at a time).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from aiohttp import web

from tests.fakes.vendor import FakeVendor

__all__ = ["FlyFake"]

IN_TRANSIT = frozenset({"stopping", "starting", "replacing"})
STATES = frozenset({"started", "stopped", "suspended", "destroyed"})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _instance_id() -> str:
    return "01J" + secrets.token_hex(12).upper()[:23]


def _image_ref(image: str) -> dict[str, Any]:
    registry, _, rest = image.partition("/") if "/" in image else ("docker.io", "", image)
    repository, _, tag = rest.partition(":")
    return {"registry": registry, "repository": repository, "tag": tag or "latest",
            "digest": "sha256:" + secrets.token_hex(32), "labels": {}}


class FlyFake(FakeVendor):
    name = "fly"

    def __init__(self, *, token: str | None = None, tls: bool = False) -> None:
        super().__init__(token=token, tls=tls)
        self.apps: dict[str, dict[str, dict[str, Any]]] = {}
        self.releases: dict[str, list[dict[str, Any]]] = {}
        self.boot_waits: dict[str, int] = {}
        self.stuck: set[str] = set()
        #: Machines leased by another operation (a deploy): restart and update answer 409
        self.leased: set[str] = set()
        self.log: list[tuple[str, str]] = []
        self.max_in_transit = 0
        self._clock = 1_732_000_000_000

    # -- state -------------------------------------------------------------------------------------
    def add_machine(self, app: str, machine_id: str, *, image: str, group: str | None = "app",
                    state: str = "started", region: str = "ams") -> dict[str, Any]:
        config: dict[str, Any] = {
            "image": image,
            "env": {"PRIMARY_REGION": region},
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512},
            "services": [{"protocol": "tcp", "internal_port": 8080,
                          "ports": [{"port": 443, "handlers": ["tls", "http"]}, {"port": 80, "handlers": ["http"]}]}],
            "restart": {"policy": "on-failure"},
        }
        if group is not None:
            config["metadata"] = {"fly_process_group": group, "fly_platform_version": "v2",
                                  "fly_release_version": "3"}
        machine = {
            "id": machine_id, "name": f"{app}-{machine_id[:4]}", "state": state, "region": region,
            "instance_id": _instance_id(), "private_ip": "fdaa:0:1:a7b:1e0:2f5c:9a1:2",
            "config": config, "image_ref": _image_ref(image),
            "created_at": "2024-11-20T17:02:11Z", "updated_at": "2024-11-21T09:05:44Z",
            "events": [{"type": "launch", "status": "created", "source": "user", "timestamp": self._tick()}],
        }
        self.apps.setdefault(app, {})[machine_id] = machine
        return machine

    def add_release(self, app: str, version: int, image: str, *, status: str = "complete") -> None:
        self.releases.setdefault(app, []).append({
            "id": f"rel_{version}", "version": version, "status": status, "imageRef": image,
            "createdAt": f"2024-11-{version:02d}T10:00:00Z", "description": f"Deploy image {image}"})

    def machine(self, app: str, machine_id: str) -> dict[str, Any]:
        return self.apps[app][machine_id]

    def _tick(self) -> int:
        self._clock += 1000
        return self._clock

    def _event(self, machine: dict[str, Any], type_: str, status: str, source: str = "user") -> None:
        machine["events"].insert(0, {"type": type_, "status": status, "source": source, "timestamp": self._tick()})

    def _in_transit(self, app: str) -> None:
        count = sum(1 for m in self.apps[app].values() if m["state"] in IN_TRANSIT)
        self.max_in_transit = max(self.max_in_transit, count)

    # -- HTTP ----------------------------------------------------------------------------------------
    def authorized(self, request: web.Request) -> bool:
        """`Bearer <token>`, or a macaroon token sent as is (`FlyV1 fm2_...`)."""
        header = request.headers.get("Authorization", "")
        expected = self.token if self.token and self.token.startswith("FlyV1 ") else f"Bearer {self.token}"
        return self.token is None or header == expected

    def unauthorized(self) -> web.Response:
        return _error(401, "Authenticate: token validation error")

    def routes(self, router: web.UrlDispatcher) -> None:
        base = "/v1/apps/{app}/machines"
        router.add_get(base, self.list_machines)
        router.add_get(base + "/{id}", self.get_machine)
        router.add_post(base + "/{id}", self.update_machine)
        router.add_post(base + "/{id}/restart", self.restart_machine)
        router.add_get(base + "/{id}/wait", self.wait_machine)
        router.add_post("/graphql", self.graphql)

    def _find(self, request: web.Request) -> dict[str, Any] | web.Response:
        app = self.apps.get(request.match_info["app"])
        if app is None:
            return _error(404, f"app {request.match_info['app']!r} not found")
        machine = app.get(request.match_info.get("id", ""))
        if machine is None:
            return _error(404, "machine not found")
        return machine

    async def list_machines(self, request: web.Request) -> web.Response:
        app = self.apps.get(request.match_info["app"])
        if app is None:
            return _error(404, f"app {request.match_info['app']!r} not found")
        return web.json_response([m for m in app.values() if m["state"] != "destroyed"])

    async def get_machine(self, request: web.Request) -> web.Response:
        found = self._find(request)
        return found if isinstance(found, web.Response) else web.json_response(found)

    async def restart_machine(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        if found["id"] in self.leased:
            return _error(409, "failed to acquire lease: machine lease currently held by another operation")
        if await request.read():
            return _error(400, "restart takes its options in the query string (timeout, signal), not a body")
        if found["state"] != "started":
            return _error(412, f"failed_precondition: machine is {found['state']}, not started")
        found["state"] = "stopping"
        self._event(found, "restart", "stopping")
        self.log.append(("restart", found["id"]))
        self._in_transit(request.match_info["app"])
        return web.json_response({"ok": True})

    async def update_machine(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        if found["id"] in self.leased:
            return _error(409, "failed to acquire lease: machine lease currently held by another operation")
        try:
            body = json.loads(await request.text())
        except ValueError:
            return _error(400, "invalid JSON body")
        config = body.get("config") if isinstance(body, dict) else None
        if not isinstance(config, dict) or not isinstance(config.get("image"), str) or not config["image"]:
            return _error(400, "config.image is required")
        for field in ("region", "name"):
            if field in body and body[field] != found[field]:
                return _error(400, f"{field} cannot be changed")
        found["config"] = config
        found["image_ref"] = _image_ref(config["image"])
        found["instance_id"] = _instance_id()
        self._event(found, "update", "replacing")
        self.log.append(("update", found["id"]))
        if found["state"] == "started" or (found["state"] in ("stopped", "suspended") and not body.get("skip_launch")):
            found["state"] = "replacing"
            self._in_transit(request.match_info["app"])
        return web.json_response(found)

    async def wait_machine(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        state = request.query.get("state", "started")
        timeout = request.query.get("timeout", "60")
        if state not in STATES or not timeout.isdigit() or not 1 <= int(timeout) <= 60:
            return _error(400, f"invalid wait: state={state!r} timeout={timeout!r}")
        instance = request.query.get("instance_id")
        if instance is not None and instance != found["instance_id"]:
            return _error(400, f"instance_id {instance} is not the current version of the machine")
        if found["state"] != state and state == "started" and found["state"] in IN_TRANSIT:
            machine_id = found["id"]
            if machine_id in self.stuck:
                pass
            elif self.boot_waits.get(machine_id, 0) > 0:
                self.boot_waits[machine_id] -= 1
            else:
                found["state"] = "started"
                self._event(found, "start", "started", source="flyd")
                self.log.append(("started", machine_id))
        if found["state"] != state:
            return _error(408, f"deadline_exceeded: machine did not reach state {state} within {timeout}s")
        return web.json_response({"ok": True})

    async def graphql(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.json_response({"errors": [{"message": "invalid JSON"}]}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return web.json_response({"errors": [{"message": "query is required"}]}, status=400)
        query, variables = body["query"], body.get("variables") or {}
        if "releasesUnprocessed" not in query or "imageRef" not in query:
            return web.json_response({"errors": [{"message": "the fake only answers the releases query"}]})
        name = variables.get("appName")
        if name not in self.releases:  # the fake knows an app in GraphQL once it has a release (add_release)
            return web.json_response({"data": {"app": None}, "errors": [
                {"message": f"Could not find App \"{name}\"", "path": ["app"], "extensions": {"code": "NOT_FOUND"}}]})
        first = variables.get("limit", variables.get("first", 25))
        nodes = sorted(self.releases.get(name, []), key=lambda r: r["version"], reverse=True)[:first]
        key = "releases" if "releases: releasesUnprocessed" in query else "releasesUnprocessed"
        return web.json_response({"data": {"app": {key: {"nodes": nodes}}}})
