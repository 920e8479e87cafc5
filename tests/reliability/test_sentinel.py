"""The daemon behind Redis Sentinel (`REDIS_URL=redis+sentinel://...`), across primary failovers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from responder.store.keys import Keys
from tests.conftest import Sink
from tests.reliability.pipeline import daemon, eventually
from tests.reliability.servers import SentinelSetup


async def test_a_rule_fires_after_the_primary_is_killed(tmp_path: Path, sentinel_setup: SentinelSetup,
                                                        sink: Sink) -> None:
    setup = sentinel_setup
    old, new = setup.primary, setup.replica
    async with daemon(tmp_path, setup.url, sink.url) as app:
        assert await app.send("api") == 202
        first = await app.incident_for("api")
        assert sink.paths == ["/notify/api"]

        killed_at = time.monotonic()
        old.kill()  # SIGKILL: no goodbye to the replica or the Sentinels
        await eventually(lambda: setup.current_primary() == new.port, 30, "the Sentinels to promote the replica")
        promoted_after = time.monotonic() - killed_at
        with new.client() as c:
            assert c.info("replication")["role"] == "master"

        # the client finds the new primary by itself: the next event is accepted and fires the rule
        status = await app.send("web")
        assert status == 202, f"webhook answered {status} {promoted_after:.1f} s after the kill"
        second = await app.incident_for("web")
        assert sink.paths == ["/notify/api", "/notify/web"]
        assert (await app.client.get("/readyz")).status == 200
        # what was written before the kill was replicated, and is served by the new primary
        assert {i["id"] for i in await app.incidents()} == {first["id"], second["id"]}
        assert int(second["id"]) > int(first["id"]), "the incident counter continued on the new primary"
    with new.client() as c:
        assert c.xlen(Keys().events) == 2


async def test_a_forced_failover_moves_every_write_to_the_new_primary(tmp_path: Path, sentinel_setup: SentinelSetup,
                                                                      sink: Sink) -> None:
    """SENTINEL FAILOVER leaves the old primary up and writable for ~10 s until it is turned into a replica;
    the client's watch drops its connections at the switch, so nothing is written there (and lost)."""
    setup = sentinel_setup
    old, new = setup.primary, setup.replica
    async with daemon(tmp_path, setup.url, sink.url) as app:
        assert await app.send("api") == 202
        await app.incident_for("api")
        with setup.sentinels[0].client() as c:
            assert c.execute_command("SENTINEL", "FAILOVER", setup.service)
        await eventually(lambda: setup.current_primary() == new.port, 30, "the forced failover")
        await asyncio.sleep(1.5)  # the client's watch asks every second
        with old.client() as c:
            assert c.info("replication")["role"] == "master", "the old primary is still a master (not yet demoted)"
            events_on_old = c.xlen(Keys().events)

        assert await app.send("web") == 202
        await app.incident_for("web")
        assert sink.paths == ["/notify/api", "/notify/web"]
        with new.client() as c:
            assert c.xlen(Keys().events) == 2
        with old.client() as c:
            assert c.info("replication")["role"] == "master"
            assert c.xlen(Keys().events) == events_on_old == 1, "an event was written to the old primary"
