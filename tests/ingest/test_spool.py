"""The outage spool: records on disk, torn tails, the size bound, orphaned slots, exactly-once replay."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import ConnectionError as RedisConnectionError

from responder.app import create_app
from responder.events import Event, EventStatus
from responder.ingest.spool import Spool, SpooledIntake, SpoolFull, store_unreachable
from responder.store.events import Appended, EventStream
from responder.store.keys import Keys
from tests.conftest import PAYLOADS, free_port


def event(n: int, source: str = "alertmanager") -> Event:
    now = datetime(2026, 11, 22, tzinfo=UTC)
    return Event(source=source, name=f"alert-{n}", status=EventStatus.FIRING, fingerprint=f"fp{n}",
                 occurred_at=now, received_at=now, delivery_id=f"{source}:{n}")


class Recorder:
    """Stands in for the stream: records appends; fails while `down`."""

    def __init__(self) -> None:
        self.appended: list[str] = []
        self.down = False

    async def append(self, events: list[Event]) -> list[Appended]:
        if self.down:
            raise RedisConnectionError("Connection refused")
        self.appended += [e.id for e in events]
        return [Appended(e.id, False) for e in events]


def spool_at(path: Path, max_bytes: int = 1 << 20) -> Spool:
    spool = Spool(path, max_bytes=max_bytes, retry_after=7)
    spool.open()
    return spool


async def test_records_survive_a_reopen_and_replay_in_order(tmp_path: Path) -> None:
    spool = spool_at(tmp_path)
    events = [event(n) for n in range(5)]
    for e in events:
        await spool.append([e])
    assert spool.active and spool.backlog == 5
    await spool.close()  # a restart (the records are fsync'd before append returns)

    again = spool_at(tmp_path)
    assert again.slot.number == 0 and again.backlog == 5
    stream = Recorder()
    assert await again.replay(stream) == 5
    assert stream.appended == [e.id for e in events]
    assert not again.active and again.bytes == 0
    assert (tmp_path / "slot-0.log").stat().st_size == 0  # the log starts over once the stream has it all
    await again.close()


async def test_a_torn_record_at_the_end_is_cut_off(tmp_path: Path) -> None:
    spool = spool_at(tmp_path)
    await spool.append([event(1)])
    await spool.append([event(2)])
    await spool.close()
    log = tmp_path / "slot-0.log"
    whole = log.stat().st_size
    with log.open("ab") as handle:  # a crash in the middle of writing a third record (never answered 202)
        handle.write(b"\x00\x00\x01\x00\xde\xad")
    again = spool_at(tmp_path)
    assert again.backlog == 2 and log.stat().st_size == whole
    stream = Recorder()
    await again.replay(stream)
    assert len(stream.appended) == 2
    await again.close()


async def test_full_spool_refuses_with_retry_after(tmp_path: Path) -> None:
    spool = spool_at(tmp_path, max_bytes=64 * 1024)
    big = event(0).model_copy(update={"summary": "x" * 20_000})
    await spool.append([big])
    await spool.append([big])
    await spool.append([big])
    with pytest.raises(SpoolFull) as refused:
        await spool.append([big])
    assert refused.value.retry_after == 7
    assert spool.backlog == 3
    await spool.close()


async def test_a_dead_processs_slot_is_replayed_by_a_live_one(tmp_path: Path) -> None:
    alive = spool_at(tmp_path)
    dying = spool_at(tmp_path)
    assert (alive.slot.number, dying.slot.number) == (0, 1)  # each process its own slot
    orphaned = [event(n, "grafana") for n in range(3)]
    for e in orphaned:
        await dying.append([e])
    await dying.close()  # the process died: its lock is free, its records are not replayed yet
    assert alive.orphans() == [1]
    stream = Recorder()
    assert await alive.replay(stream) == 3
    assert stream.appended == [e.id for e in orphaned]
    assert alive.orphans() == []
    await alive.close()


async def test_replay_stops_where_redis_failed_and_goes_on_from_there(tmp_path: Path) -> None:
    spool = spool_at(tmp_path)
    events = [event(n) for n in range(4)]
    for e in events:
        await spool.append([e])
    stream = Recorder()
    calls = 0
    original = stream.append

    async def flaky(batch: list[Event]) -> list[Appended]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RedisConnectionError("Connection reset by peer")
        return await original(batch)

    stream.append = flaky  # type: ignore[method-assign]
    with pytest.raises(RedisConnectionError):
        await spool.replay(stream)
    assert spool.backlog == 2 and spool.active
    await spool.replay(stream)
    assert stream.appended == [e.id for e in events]
    await spool.close()


async def test_replaying_twice_adds_each_event_once(tmp_path: Path, redis_url: str) -> None:
    """A crash after the stream took a record but before the offset moved: the record is replayed again and the
    stream's delivery-id dedup drops it."""
    keys = Keys(f"spool-{os.getpid()}-{id(tmp_path)}")
    async with aioredis.from_url(redis_url, decode_responses=True) as client:
        stream = EventStream(client, keys)
        spool = spool_at(tmp_path)
        events = [event(n) for n in range(3)]
        for e in events:
            await spool.append([e])
        await spool.close()
        again = spool_at(tmp_path)
        await again.replay(stream)
        await again.close()
        # put the records back as if the offset had never been written
        log = tmp_path / "slot-0.log"
        first = spool_at(tmp_path / "copy")
        for e in events:
            await first.append([e])
        await first.close()
        log.write_bytes((tmp_path / "copy" / "slot-0.log").read_bytes())
        (tmp_path / "slot-0.offset").write_text("0")
        third = spool_at(tmp_path)
        assert third.backlog == 3
        await third.replay(stream)
        await third.close()
        entries = await client.xrange(keys.events)
        assert [json.loads(fields["e"])["id"] for _id, fields in entries] == [e.id for e in events]


async def test_while_the_spool_holds_anything_new_webhooks_queue_behind_it(tmp_path: Path) -> None:
    stream = Recorder()
    spool = spool_at(tmp_path)
    intake = SpooledIntake(stream, spool)
    first, second, third = event(1), event(2), event(3)
    stream.down = True
    assert (await intake.accept([first]))[1] is True
    stream.down = False  # Redis is back, but the spool has not been replayed yet
    assert (await intake.accept([second]))[1] is True, "must not overtake the spooled event"
    assert stream.appended == []
    await spool.replay(stream)
    assert (await intake.accept([third]))[1] is False  # the spool is empty: straight to the stream again
    assert stream.appended == [first.id, second.id, third.id]
    await spool.close()


def test_only_outages_are_spooled() -> None:
    from redis.exceptions import AuthenticationError, NoScriptError, ResponseError

    assert store_unreachable(RedisConnectionError("refused"))
    assert store_unreachable(ConnectionRefusedError())
    assert not store_unreachable(AuthenticationError("WRONGPASS"))  # a configuration problem, not an outage
    assert not store_unreachable(NoScriptError("NOSCRIPT"))
    assert not store_unreachable(ResponseError("ERR wrong number of arguments"))


async def test_full_spool_answers_503_with_retry_after_and_readyz_not_ready(tmp_path: Path, make_config: Any) -> None:
    yaml = ("redis: {connect_timeout: 200ms, socket_timeout: 200ms, retries: 0}\n"
            f"spool: {{dir: {tmp_path / 'spool'}, max_bytes: 65536, retry_after: 45s}}\n"
            "ingest: {rate_limits: {per_ip: {requests: 1000000, per: 1m}}}\n")
    loaded = make_config({"responder.yaml": yaml})
    app = create_app(loaded, env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, background=False)
    body = json.loads((PAYLOADS / "alertmanager/firing.json").read_text())
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        statuses = []
        for n in range(200):
            body["alerts"][0]["fingerprint"] = f"{n:016x}"
            response = await client.post("/hooks/alertmanager", json=body)
            statuses.append(response.status)
            if response.status == 503:
                assert response.headers["Retry-After"] == "45"
                assert (await response.json())["field"] == "spool"
                break
            assert (await response.json())["spooled"] is True
        assert statuses[-1] == 503 and statuses.count(202) >= 10
        ready = await client.get("/readyz")
        assert ready.status == 503 and (await ready.json())["checks"]["spool"]["backlog"] == statuses.count(202)
