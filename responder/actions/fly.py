"""fly: restart or roll back the Machines of a Fly.io app through the Machines API, one Machine at a time.

`fly.restart` lists the app's Machines (`GET /v1/apps/{app}/machines`), keeps those of `process_group`
(the Machine's `config.metadata.fly_process_group`) when one is given, and restarts the `started` ones one
at a time: `POST /v1/apps/{app}/machines/{id}/restart`, then `GET .../wait?state=started&timeout=N` until the
Machine is started again before the next one is touched. Stopped or suspended Machines are left alone (they
boot clean on their next start) and reported. If the step is retried after a partial run (a 5xx, or the
step's timeout in the middle of the app), the Machines already restarted in this run are not restarted again:
their ids are kept per incident in ProviderState under `restart:<run>:<step>` and the retry only waits for
them.

`fly.rollback` moves the Machines back to the previous release's image:

1. The target image is the `image` param when given. Otherwise it is discovered from the app's releases
   (Fly GraphQL, `POST https://api.fly.io/graphql`, `app.releasesUnprocessed` — what `fly releases` reads —
   newest first, with each release's `imageRef`): the *current* release is the newest release whose
   `imageRef` is what the selected Machines run (`config.image`; when the Machines disagree, e.g. after a
   half-finished deploy, the image of the newest release among them), and the target is the newest
   `complete` release older than it with a different `imageRef`. If the Machines run an image that is in
   none of the last releases, the step fails (permanent) and asks for an explicit `image`: guessing could
   roll *forward*.
2. Each selected Machine not already on the target image is updated, one at a time:
   `POST /v1/apps/{app}/machines/{id}` with its **whole** current `config` (the API does not take partial
   configs) and only `image` changed. A started Machine reboots on the new image and is waited for
   (`wait?instance_id=<new instance>&state=started`); a stopped/suspended one is updated with
   `skip_launch: true` and stays stopped.
3. Running it again is safe: Machines already on the target image are skipped (so a retry finishes the
   job rather than rolling back twice).

What it does not do: it does not create a Fly *release* (that is flyctl's GraphQL bookkeeping), so
`fly releases` still lists the bad version as the latest; the Machines' `config.image` is the truth, and the
next `fly deploy` moves them forward as usual. Machine leases are not taken; a Machine leased by a deploy in
progress answers 409/412, reported as retryable.

Waiting uses Fly's long-poll (`timeout` at most 60 s per request, HTTP 408 when it expires), repeated until
`wait_timeout`; a Machine that is not started by then stops the step (permanent) before any other Machine
is touched. Tokens: `Authorization: Bearer <token>`, or the token as is when it already reads
`FlyV1 fm2_...` (the form `fly tokens create deploy` prints).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from typing import Any

from pydantic import Field, SecretStr

from responder.actions.base import (
    ActionProvider,
    ActionResult,
    PlannedCall,
    Remediation,
    StepContext,
    VendorApi,
    VendorConfig,
)
from responder.config.base import Duration, StrictModel
from responder.errors import PermanentActionError, RetryableActionError

__all__ = ["FlyConfig", "FlyProvider", "FlyRestartParams", "FlyRollbackParams"]

DEFAULT_BASE_URL = "https://api.machines.dev"
DEFAULT_GRAPHQL_URL = "https://api.fly.io/graphql"
#: Fly's wait endpoint takes at most 60 s per request
WAIT_CHUNK_SECONDS = 60
RELEASES_LIMIT = 25
GONE = frozenset({"destroyed", "destroying"})
RESTING = frozenset({"stopped", "suspended", "created"})

RELEASES_QUERY = (
    "query ($appName: String!, $limit: Int!) { app(name: $appName) { "
    "releases: releasesUnprocessed(first: $limit) { nodes { id version status imageRef createdAt description } } } }"
)

APP_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
GROUP_PATTERN = r"^[A-Za-z0-9_-]+$"


class FlyConfig(VendorConfig):
    token: SecretStr | None = Field(default=None, description="Fly.io API token (fly tokens create deploy)")
    graphql_url: str = Field(default=DEFAULT_GRAPHQL_URL,
                             description="Fly GraphQL endpoint, read for the release history by fly.rollback")


class FlyRestartParams(StrictModel):
    app: str = Field(pattern=APP_PATTERN, description="Fly app name")
    process_group: str | None = Field(default=None, pattern=GROUP_PATTERN,
                                      description="only Machines of this process group (e.g. worker); "
                                                  "default: every Machine of the app")
    wait_timeout: Duration = Field(default=timedelta(seconds=60),
                                   description="how long to wait for each Machine to be started again")


class FlyRollbackParams(StrictModel):
    app: str = Field(pattern=APP_PATTERN, description="Fly app name")
    process_group: str | None = Field(default=None, pattern=GROUP_PATTERN,
                                      description="only Machines of this process group; default: every Machine")
    image: str | None = Field(default=None, min_length=1,
                              description="image to move the Machines to (e.g. registry.fly.io/app:deployment-01J…); "
                                          "default: the previous complete release's image")
    wait_timeout: Duration = Field(default=timedelta(seconds=60),
                                   description="how long to wait for each Machine to be started on the old image")


def _group(machine: dict[str, Any]) -> str | None:
    metadata = (machine.get("config") or {}).get("metadata") or {}
    group = metadata.get("fly_process_group")
    return str(group) if group else None


def _image(machine: dict[str, Any]) -> str:
    return str((machine.get("config") or {}).get("image") or "")


def _image_names(machine: dict[str, Any]) -> set[str]:
    """Every way a release's imageRef may name this Machine's image (config.image, tag form, digest form)."""
    names = {_image(machine)} - {""}
    ref = machine.get("image_ref") or {}
    base = "/".join(p for p in (ref.get("registry"), ref.get("repository")) if p)
    if base and ref.get("tag"):
        names.add(f"{base}:{ref['tag']}")
    if base and ref.get("digest"):
        names.add(f"{base}@{ref['digest']}")
    return names


def _short(image: str) -> str:
    return image.rsplit("/", 1)[-1]


class FlyProvider(ActionProvider):
    name = "fly"
    Config = FlyConfig
    actions = {"restart": FlyRestartParams, "rollback": FlyRollbackParams}

    # -- HTTP ------------------------------------------------------------------------------------
    def _cfg(self) -> FlyConfig:
        assert isinstance(self.config, FlyConfig)
        return self.config

    def _auth(self) -> dict[str, str]:
        token = self._cfg().token
        value = token.get_secret_value() if token else ""
        return {"Authorization": value if value.startswith("FlyV1 ") else f"Bearer {value}"}

    def _api(self, extra_timeout: float = 0.0) -> VendorApi:
        cfg = self._cfg()
        return VendorApi("fly", self.deps.http, cfg.base_url or DEFAULT_BASE_URL, headers=self._auth(),
                         secrets=self.secrets(), timeout=cfg.timeout + timedelta(seconds=extra_timeout))

    def _graphql(self) -> VendorApi:
        cfg = self._cfg()
        return VendorApi("fly", self.deps.http, cfg.graphql_url, headers=self._auth(), secrets=self.secrets(),
                         timeout=cfg.timeout)

    @staticmethod
    def _machines_path(app: str, machine_id: str | None = None, action: str = "") -> str:
        path = f"/v1/apps/{app}/machines"
        if machine_id:
            path += f"/{machine_id}"
        return f"{path}/{action}" if action else path

    # -- plan / remediation ----------------------------------------------------------------------
    def remediation(self, verb: str, params: StrictModel) -> Remediation | None:
        assert isinstance(params, FlyRestartParams | FlyRollbackParams)
        target = f"fly:{params.app}" + (f"/{params.process_group}" if params.process_group else "")
        return Remediation(kind=verb, target=target)

    def plan(self, verb: str, params: StrictModel, ctx: StepContext) -> list[PlannedCall]:
        assert isinstance(params, FlyRestartParams | FlyRollbackParams)
        api = self._api()
        which = f"those of process group {params.process_group}" if params.process_group else "all of them"
        chunk = self._wait_chunks(params.wait_timeout)[0]
        calls = [api.planned("GET", self._machines_path(params.app),
                             note=f"list the Machines; keep {which}")]
        if isinstance(params, FlyRestartParams):
            machine = "<each started Machine, one at a time>"
            calls += [
                api.planned("POST", self._machines_path(params.app, machine, "restart")),
                api.planned("GET", self._machines_path(params.app, machine, "wait")
                            + f"?state=started&timeout={chunk}",
                            note=f"until started (up to {params.wait_timeout.total_seconds():g}s) "
                                 "before the next Machine"),
            ]
            return calls
        image = params.image
        if image is None:
            image = "<imageRef of the previous complete release>"
            calls.append(PlannedCall("POST", self._cfg().graphql_url,
                                     {"query": RELEASES_QUERY, "variables": {"appName": params.app,
                                                                             "limit": RELEASES_LIMIT}},
                                     self._auth(), note="release history: the release before the one the "
                                                        "Machines run"))
        machine = "<each Machine not on that image, one at a time>"
        calls += [
            api.planned("POST", self._machines_path(params.app, machine),
                        {"config": {"...": "<the Machine's whole current config>", "image": image}},
                        note="a stopped Machine is updated with skip_launch: true and stays stopped"),
            api.planned("GET", self._machines_path(params.app, machine, "wait")
                        + f"?instance_id=<new instance_id>&state=started&timeout={chunk}",
                        note="before the next Machine"),
        ]
        return calls

    # -- run -------------------------------------------------------------------------------------
    async def run(self, verb: str, params: StrictModel, ctx: StepContext) -> ActionResult:
        if isinstance(params, FlyRestartParams):
            return await self._restart(params, ctx)
        if isinstance(params, FlyRollbackParams):
            return await self._rollback(params, ctx)
        raise PermanentActionError(f"fly: unknown action {verb}")

    async def _machines(self, app: str, group: str | None) -> list[dict[str, Any]]:
        data = (await self._api().request("GET", self._machines_path(app))).json()
        if not isinstance(data, list):
            raise PermanentActionError(f"fly: unexpected machine list for {app}: {str(data)[:120]}")
        machines = [m for m in data if isinstance(m, dict) and m.get("id") and m.get("state") not in GONE]
        if group is not None:
            machines = [m for m in machines if _group(m) == group]
        if not machines:
            raise PermanentActionError(f"fly: app {app} has no Machines"
                                       + (f" in process group {group}" if group else ""))
        return machines

    @staticmethod
    def _wait_chunks(wait_timeout: timedelta) -> list[int]:
        total = max(1, math.ceil(wait_timeout.total_seconds()))
        chunks = [WAIT_CHUNK_SECONDS] * (total // WAIT_CHUNK_SECONDS)
        if total % WAIT_CHUNK_SECONDS:
            chunks.append(total % WAIT_CHUNK_SECONDS)
        return chunks

    async def _wait_started(self, app: str, machine_id: str, wait_timeout: timedelta,
                            instance_id: str | None = None, done: list[str] | None = None) -> None:
        """Long-poll Fly's wait endpoint until the Machine is started, up to `wait_timeout`."""
        chunks = self._wait_chunks(wait_timeout)
        api = self._api(extra_timeout=max(chunks))
        for chunk in chunks:
            query = {"state": "started", "timeout": str(chunk)}
            if instance_id:
                query["instance_id"] = instance_id
            response = await api.request("GET", self._machines_path(app, machine_id, "wait"), params=query,
                                         ok=(408,))
            if response.status != 408:
                return
        finished = f" (already done: {', '.join(done)})" if done else ""
        raise PermanentActionError(f"fly: Machine {machine_id} of {app} was not started again within "
                                   f"{sum(chunks)}s; stopped before touching the next Machine{finished}")

    async def _send(self, method: str, app: str, machine_id: str, action: str = "",
                    body: Any = None) -> dict[str, Any]:
        response = await self._api().request(method, self._machines_path(app, machine_id, action), json_body=body,
                                             ok=(409, 412))
        if response.status in (409, 412):
            raise RetryableActionError(f"fly: Machine {machine_id} of {app} is busy (HTTP {response.status}, "
                                       "leased by another operation such as a deploy in progress)")
        data = response.json()
        return data if isinstance(data, dict) else {}

    async def _restart(self, params: FlyRestartParams, ctx: StepContext) -> ActionResult:
        machines = await self._machines(params.app, params.process_group)
        field = f"restart:{ctx.idempotency_key}"
        state = await self.deps.state.get(ctx.incident.id, self.name)
        sent = [m for m in state.get(field, "").split(",") if m]
        todo = [m for m in machines if m["state"] == "started" or m["id"] in sent]
        skipped = [{"id": m["id"], "state": m["state"]} for m in machines if m not in todo]
        where = params.app + (f" ({params.process_group})" if params.process_group else "")
        if not todo:
            states = ", ".join(f"{s['id']} {s['state']}" for s in skipped)
            raise PermanentActionError(f"fly: no started Machines to restart in {where} ({states})")
        restarted: list[str] = []
        for machine in todo:
            machine_id = str(machine["id"])
            if machine_id not in sent:
                await self._send("POST", params.app, machine_id, "restart")
                sent.append(machine_id)
                await self.deps.state.set(ctx.incident.id, self.name, **{field: ",".join(sent)})
            await self._wait_started(params.app, machine_id, params.wait_timeout, done=restarted)
            restarted.append(machine_id)
        await self.deps.state.set(ctx.incident.id, self.name, **{field: ""})
        left = f"; left {len(skipped)} not started alone" if skipped else ""
        summary = (f"restarted {len(restarted)} Machine{'s' if len(restarted) != 1 else ''} of {where} one at a "
                   f"time: {', '.join(restarted)}{left}")
        return ActionResult(summary, {"app": params.app, "process_group": params.process_group,
                                      "machines": restarted, "skipped": skipped})

    async def _releases(self, app: str) -> list[dict[str, Any]]:
        query = {"query": RELEASES_QUERY, "variables": {"appName": app, "limit": RELEASES_LIMIT}}
        response = await self._graphql().request("POST", self._cfg().graphql_url, json_body=query)
        body = response.json()
        if not isinstance(body, dict):
            raise PermanentActionError("fly: unexpected GraphQL answer")
        errors = body.get("errors") or []
        app_data = (body.get("data") or {}).get("app")
        if errors or not isinstance(app_data, dict):
            message = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict)) or "no app"
            raise PermanentActionError(f"fly: release history of {app}: {message[:200]}")
        nodes = (app_data.get("releases") or {}).get("nodes") or []
        releases = [n for n in nodes if isinstance(n, dict) and isinstance(n.get("version"), int)]
        return sorted(releases, key=lambda r: r["version"], reverse=True)

    @staticmethod
    def _previous_image(machines: list[dict[str, Any]], releases: list[dict[str, Any]], app: str
                        ) -> tuple[str, str, dict[str, Any]]:
        """(current image, target image, target release) from the release history."""
        names = [_image_names(m) for m in machines]
        running = {n for group in names for n in group}
        current = next((r for r in releases if r.get("imageRef") in running), None)
        if current is None:
            images = ", ".join(sorted({_image(m) for m in machines}))
            raise PermanentActionError(
                f"fly: the Machines of {app} run {images}, which is not in its last {len(releases)} releases; "
                "cannot tell which release is the previous one, pass `image` explicitly")
        current_image = str(current["imageRef"])
        for release in releases:
            if (release["version"] < current["version"] and str(release.get("status", "")).lower() == "complete"
                    and release.get("imageRef") and release["imageRef"] != current_image):
                return current_image, str(release["imageRef"]), release
        raise PermanentActionError(f"fly: no complete release of {app} before v{current['version']} with another "
                                   "image; nothing to roll back to (pass `image` explicitly)")

    async def _rollback(self, params: FlyRollbackParams, ctx: StepContext) -> ActionResult:
        machines = await self._machines(params.app, params.process_group)
        field = f"rollback:{ctx.idempotency_key}"
        chosen = (await self.deps.state.get(ctx.incident.id, self.name)).get(field, "")
        release: dict[str, Any] | None = None
        if params.image or chosen:  # explicit, or chosen by an earlier attempt of this step (a retry)
            target = params.image or chosen
            counts = Counter(_image(m) for m in machines if _image(m) != target)
            current = counts.most_common(1)[0][0] if counts else target
        else:
            current, target, release = self._previous_image(machines, await self._releases(params.app), params.app)
            await self.deps.state.set(ctx.incident.id, self.name, **{field: target})
        where = params.app + (f" ({params.process_group})" if params.process_group else "")
        updated: list[str] = []
        already: list[str] = []
        for machine in machines:
            machine_id = str(machine["id"])
            resting = machine.get("state") in RESTING
            if target in _image_names(machine):
                already.append(machine_id)
                if not resting:  # e.g. updated by an earlier attempt of this step: make sure it came up
                    await self._wait_started(params.app, machine_id, params.wait_timeout, done=updated)
                continue
            body: dict[str, Any] = {"config": {**(machine.get("config") or {}), "image": target}}
            if resting:
                body["skip_launch"] = True
            result = await self._send("POST", params.app, machine_id, body=body)
            if not resting:
                await self._wait_started(params.app, machine_id, params.wait_timeout,
                                         instance_id=result.get("instance_id") or None, done=updated)
            updated.append(machine_id)
        await self.deps.state.set(ctx.incident.id, self.name, **{field: ""})
        version = f" (release v{release['version']})" if release else ""
        if updated:
            summary = (f"rolled back {len(updated)} Machine{'s' if len(updated) != 1 else ''} of {where} to "
                       f"{_short(target)}{version}, was {_short(current)}, one at a time")
        else:
            summary = f"{where}: every Machine already runs {_short(target)}{version}; nothing to roll back"
        return ActionResult(summary, {"app": params.app, "process_group": params.process_group, "image": target,
                                      "previous_image": current, "release_version": release["version"] if release
                                      else None, "machines": updated, "unchanged": already})
