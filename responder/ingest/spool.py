"""The outage spool: accepted webhooks go to a bounded, append-only, fsync'd file while Redis is unreachable.

While Redis answers, ingest appends straight to the event stream. When an append fails because the store
cannot be reached, the webhook's events are written to the spool instead and the sender gets its 202: the
202 is only sent after the record is on disk (fsync). From then on every webhook goes to the spool, behind
the ones already there, until a replayer has moved the whole spool into the stream in order; only then does
ingest write to Redis directly again. So the stream receives each source's events in the order they were
accepted. Replaying is exactly once: the stream's append drops an event whose delivery id it has already
seen (the dedup key), so a record replayed again after a crash, or one whose first append reached Redis
although the reply was lost, is not added twice.

Files, in `spool.dir` (one slot per process; `--workers N` gives N slots):

    slot-<n>.lock     flock'd by the process that owns slot n
    slot-<n>.log      records: 4-byte length, 4-byte CRC-32, then a JSON array of events
    slot-<n>.offset   how much of the log the stream already has (written atomically)

A process takes the first free slot. A slot whose owner died (its lock is free) is replayed by whichever
process next finds it, so a crash during an outage loses nothing that was answered with 202. A torn record
at the end of a log (a crash in the middle of a write, never acknowledged) is cut off when the slot is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field, TypeAdapter

from responder.config.base import Duration, StrictModel
from responder.events import Event
from responder.logs import get_logger
from responder.store.events import Appended
from responder.store.redis import store_unreachable

__all__ = ["Spool", "SpoolConfig", "SpoolFull", "SpooledIntake", "default_spool_dir", "store_unreachable"]

log = get_logger(__name__)

_HEADER = struct.Struct(">II")
_EVENTS = TypeAdapter(list[Event])


class SpoolConfig(StrictModel):
    """Where ingest keeps accepting webhooks while Redis is unreachable (not used by the embedded store)."""

    enabled: bool = Field(default=True, description="false: ingest answers 503 while Redis is unreachable")
    dir: str | None = Field(default=None, description="a directory on a persistent volume; unset: "
                            "$XDG_STATE_HOME/responder/spool (~/.local/state/responder/spool)")
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024,
                           description="when the spool holds this much, ingest answers 503 with Retry-After")
    retry_after: Duration = Field(default=timedelta(seconds=30),
                                  description="the Retry-After sent with a 503 when the spool is full")


def default_spool_dir(env: dict[str, str]) -> Path:
    """$XDG_STATE_HOME/responder/spool, else ~/.local/state/responder/spool (`env` first, then the process's)."""
    state = env.get("XDG_STATE_HOME") or os.environ.get("XDG_STATE_HOME")
    return Path(state or Path.home() / ".local" / "state") / "responder" / "spool"


class SpoolFull(Exception):
    """The spool holds `max_bytes` already: the webhook is refused (503) and the sender retries later."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("the outage spool is full")
        self.retry_after = retry_after


class Appender(Protocol):
    async def append(self, events: list[Event]) -> list[Appended]: ...


@dataclass
class _Pending:
    record: bytes
    future: asyncio.Future[None]


@dataclass
class _Slot:
    """One slot's files, opened and locked."""

    directory: Path
    number: int
    lock_fd: int
    log_fd: int
    offset: int  # bytes of the log already in the stream
    size: int  # bytes of valid records in the log
    records: int  # records not yet in the stream
    lock_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.lock_path = self.directory / f"slot-{self.number}.lock"

    @property
    def log_path(self) -> Path:
        return self.directory / f"slot-{self.number}.log"

    @property
    def offset_path(self) -> Path:
        return self.directory / f"slot-{self.number}.offset"

    def close(self) -> None:
        os.close(self.log_fd)
        os.close(self.lock_fd)  # releases the flock


def _try_lock(directory: Path, number: int) -> int | None:
    fd = os.open(directory / f"slot-{number}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _read_offset(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _write_offset(directory: Path, path: Path, offset: int) -> None:
    tmp = path.with_suffix(".offset.tmp")
    with open(tmp, "w") as handle:
        handle.write(str(offset))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _scan(fd: int, start: int) -> tuple[int, int]:
    """(end of the last whole record, number of whole records) from `start`; a torn tail is not counted."""
    size = os.fstat(fd).st_size
    position, count = start, 0
    while position + _HEADER.size <= size:
        length, crc = _HEADER.unpack(os.pread(fd, _HEADER.size, position))
        if position + _HEADER.size + length > size:
            break
        body = os.pread(fd, length, position + _HEADER.size)
        if zlib.crc32(body) != crc:
            break
        position += _HEADER.size + length
        count += 1
    return position, count


def _open_slot(directory: Path, number: int, lock_fd: int) -> _Slot:
    log_path = directory / f"slot-{number}.log"
    log_fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    offset = _read_offset(directory / f"slot-{number}.offset")
    size = os.fstat(log_fd).st_size
    if offset > size:  # the log was cut short behind our back: replay what is there
        offset = 0
    end, records = _scan(log_fd, offset)
    if end < size:
        log.warning("outage spool: cutting off a torn record at the end", slot=number, at=end, size=size)
        os.ftruncate(log_fd, end)
        os.fsync(log_fd)
    return _Slot(directory, number, lock_fd, log_fd, offset, end, records)


def _read_records(slot: _Slot, limit: int) -> list[tuple[int, bytes]]:
    """Up to `limit` records after the slot's offset, each with the offset just past it."""
    out: list[tuple[int, bytes]] = []
    position = slot.offset
    while len(out) < limit and position + _HEADER.size <= slot.size:
        length, crc = _HEADER.unpack(os.pread(slot.log_fd, _HEADER.size, position))
        body = os.pread(slot.log_fd, length, position + _HEADER.size)
        if len(body) < length or zlib.crc32(body) != crc:  # cannot happen after _scan unless the disk lies
            raise OSError(f"outage spool slot {slot.number}: damaged record at byte {position}")
        position += _HEADER.size + length
        out.append((position, body))
    return out


def _reset(slot: _Slot) -> None:
    """Everything in the log is in the stream: start the log over."""
    os.ftruncate(slot.log_fd, 0)
    os.fsync(slot.log_fd)
    _write_offset(slot.directory, slot.offset_path, 0)
    slot.offset = slot.size = slot.records = 0


class Spool:
    """This process's slot: group-committed appends (one write + fsync for all waiting), ordered replay."""

    #: records per replay read
    REPLAY_BATCH = 64

    def __init__(self, directory: Path, *, max_bytes: int, retry_after: float) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.retry_after = retry_after
        self._slot: _Slot | None = None
        self._queue: deque[_Pending] = deque()
        self._queued_bytes = 0
        self._flusher: asyncio.Task[None] | None = None
        self.replayed = 0  # events moved into the stream since start
        #: the last webhook was refused for want of room (until one fits again or the replay frees room)
        self.full = False

    # ---- lifecycle

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        number = 0
        while True:
            fd = _try_lock(self.directory, number)
            if fd is not None:
                break
            number += 1
        self._slot = _open_slot(self.directory, number, fd)
        if self._slot.records:
            log.warning("outage spool holds events from before the restart; they are replayed when Redis answers",
                        slot=number, events_records=self._slot.records)

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        if self._slot is not None:
            self._slot.close()
            self._slot = None

    @property
    def slot(self) -> _Slot:
        if self._slot is None:
            raise RuntimeError("spool is not open")
        return self._slot

    # ---- state

    @property
    def backlog(self) -> int:
        """Records accepted (or being written) that the stream does not have yet."""
        return self.slot.records + len(self._queue) + (1 if self._flushing else 0)

    @property
    def bytes(self) -> int:
        return self.slot.size - self.slot.offset + self._queued_bytes

    @property
    def _flushing(self) -> bool:
        return self._flusher is not None and not self._flusher.done()

    @property
    def active(self) -> bool:
        """True while anything is spooled: new webhooks must queue behind it to keep their order."""
        return bool(self.slot.records or self._queue or self._flushing)

    def orphans(self) -> list[int]:
        """Slots of processes that died with a backlog (their lock is free and their log is not empty)."""
        found = []
        for path in self.directory.glob("slot-*.log"):
            number = int(path.stem.split("-", 1)[1]) if path.stem.split("-", 1)[1].isdigit() else -1
            if number < 0 or number == self.slot.number:
                continue
            if path.stat().st_size > _read_offset(self.directory / f"slot-{number}.offset"):
                found.append(number)
        return sorted(found)

    # ---- append (ingest)

    async def append(self, events: list[Event]) -> None:
        """Write one webhook's events as one record; return once it is on disk."""
        body = b"[" + b",".join(e.model_dump_json().encode() for e in events) + b"]"
        record = _HEADER.pack(len(body), zlib.crc32(body)) + body
        if self.bytes + len(record) > self.max_bytes:
            self.full = True
            raise SpoolFull(self.retry_after)
        self.full = False
        pending = _Pending(record, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._queued_bytes += len(record)
        if not self._flushing:
            self._flusher = asyncio.create_task(self._flush(), name="spool-append")
        await asyncio.shield(pending.future)

    async def _flush(self) -> None:
        slot = self.slot
        while self._queue:
            batch = list(self._queue)
            self._queue.clear()
            data = b"".join(p.record for p in batch)
            try:
                await asyncio.to_thread(_write_all, slot.log_fd, data)
            except OSError as exc:  # disk full, I/O error: these webhooks are refused, not lost silently
                self._queued_bytes -= len(data)
                with contextlib.suppress(OSError):  # drop a partial write so the log stays whole
                    os.ftruncate(slot.log_fd, slot.size)
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            self._queued_bytes -= len(data)
            slot.size += len(data)
            slot.records += len(batch)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_result(None)

    # ---- replay

    async def replay(self, stream: Appender) -> int:
        """Move this slot's records into the stream, oldest first; return how many events were appended.

        Raises what the stream raises (Redis still down): the offset then says where to go on next time.
        When the whole log is in the stream and nothing is being written, the log is reset and `active`
        turns false, in the same step, so no webhook can slip in between.
        """
        moved = await self._replay_slot(self.slot, stream)
        for number in self.orphans():
            fd = _try_lock(self.directory, number)
            if fd is None:  # its owner is alive (it replays its own)
                continue
            orphan = _open_slot(self.directory, number, fd)
            try:
                if orphan.records:
                    log.warning("outage spool: replaying the slot of a process that stopped", slot=number,
                                records=orphan.records)
                moved += await self._replay_slot(orphan, stream)
            finally:
                orphan.close()
        return moved

    async def _replay_slot(self, slot: _Slot, stream: Appender) -> int:
        moved = 0
        while True:
            records = await asyncio.to_thread(_read_records, slot, self.REPLAY_BATCH)
            if not records:
                if slot is not self._slot or not (self._queue or self._flushing):
                    # synchronously: between this check and the reset no webhook may be spooled (the loop is ours)
                    _reset(slot)
                    return moved
                await asyncio.sleep(0.01)  # a write is landing: take it too before switching back
                continue
            for end, body in records:
                events = _EVENTS.validate_json(body)
                await stream.append(events)
                moved += len(events)
                self.replayed += len(events)
                self.full = False
                slot.offset = end
                slot.records -= 1
            await asyncio.to_thread(_write_offset, slot.directory, slot.offset_path, slot.offset)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


class SpooledIntake:
    """Ingest's way into the stream: straight to Redis, or through the spool while Redis is unreachable."""

    def __init__(self, stream: Appender, spool: Spool | None, *, metrics: Any = None) -> None:
        self.stream = stream
        self.spool = spool
        self.metrics = metrics
        self._wake = asyncio.Event()
        self.degraded_since: float | None = None  # loop time of the first spooled webhook of this outage

    @property
    def degraded(self) -> bool:
        return self.spool is not None and self.spool.active

    async def accept(self, events: list[Event]) -> tuple[list[Appended], bool]:
        """Append `events`; (what the stream said, False) or (all new, True) when they went to the spool."""
        if self.spool is None:
            return await self.stream.append(events), False
        if not self.spool.active:
            try:
                return await self.stream.append(events), False
            except Exception as exc:
                if not store_unreachable(exc):
                    raise
                if self.degraded_since is None:
                    log.error("Redis is unreachable: accepted webhooks go to the outage spool until it is back",
                              error=exc.__class__.__name__, spool=str(self.spool.directory))
                    self.degraded_since = asyncio.get_running_loop().time()
        await self.spool.append(events)
        self._wake.set()
        return [Appended(e.id, False) for e in events], True

    async def replay_forever(self, *, idle: float = 5.0, backoff: float = 0.5, max_backoff: float = 5.0) -> None:
        """Drain the spool whenever it holds something (and look for orphaned slots every `idle` seconds)."""
        if self.spool is None:
            return
        delay = backoff
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=idle if not self.spool.active else delay)
            self._wake.clear()
            try:
                moved = await self.spool.replay(self.stream)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not store_unreachable(exc):
                    log.error("outage spool replay failed", error=f"{exc.__class__.__name__}: {exc}")
                delay = min(max_backoff, delay * 2)
                continue
            delay = backoff
            if moved:
                log.info("outage spool replayed into the stream", events=moved, spooled_left=self.spool.backlog)
            if not self.spool.active and self.degraded_since is not None:
                log.warning("Redis is back: the outage spool is empty, ingest writes to Redis again")
                self.degraded_since = None
