"""EngineConsumer: reads the event stream through a consumer group and runs the periodic tick."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from responder.clock import Clock
from responder.config.model import EngineConfig
from responder.engine.evaluator import Evaluator
from responder.engine.recorder import EventRecorder
from responder.logs import bind, get_logger, unbind
from responder.metrics import Metrics
from responder.observability import report_exception
from responder.playbooks.runner import PlaybookRunner
from responder.store.events import Delivery, EventStream
from responder.store.redis import RedisError

__all__ = ["EngineConsumer"]

log = get_logger(__name__)


class EngineConsumer:
    """At-least-once: an event is acknowledged only after the rules have handled it."""

    def __init__(self, stream: EventStream, evaluator: Evaluator, runner: PlaybookRunner, metrics: Metrics,
                 clock: Clock, config: EngineConfig, name: str, *, block_ms: int = 1000) -> None:
        self.stream = stream
        self.evaluator = evaluator
        self.runner = runner
        self.metrics = metrics
        self.clock = clock
        self.config = config
        self.name = name
        self.group = stream.keys.engine_group
        #: 0 polls without BLOCK (the embedded fakeredis stalls other commands during a blocking read)
        self.block_ms = block_ms
        #: appends each handled event to a JSONL file (`record:` in responder.yaml); set by the services
        self.recorder: EventRecorder | None = None
        #: set by stop(): run() and run_ticks() return after the event or tick in hand
        self.stopping = False
        self._stopped = asyncio.Event()
        #: when a tick last finished or an event was last handled: the heartbeat and /metrics read it
        self.started = clock.now()
        self.last_evaluation: datetime | None = None

    async def process(self, delivery: Delivery) -> bool:
        """Handle one entry; True when it was acknowledged (done or dead-lettered)."""
        if delivery.event is None:
            await self.stream.dead_letter(self.group, delivery, "undecodable entry")
            return True
        bind(event_id=delivery.event.id)
        try:
            await self.evaluator.handle(delivery.event)
        except RedisError:
            raise  # the store is down: leave the entry pending, it is retried when Redis is back
        except Exception as exc:
            self.metrics.pipeline_errors.labels(stage="engine").inc()
            report_exception(exc, event_id=delivery.event.id)
            if delivery.times_delivered >= self.config.max_deliveries:
                await self.stream.dead_letter(self.group, delivery, f"{exc.__class__.__name__}: {exc}")
                return True
            return False  # stays pending; claimed again after `claim_idle`
        finally:
            unbind("event_id")
        await self.stream.ack(self.group, [delivery.message_id])
        self.last_evaluation = self.clock.now()
        self.metrics.events_processed.inc()
        if self.recorder is not None:
            self.recorder.write(delivery.event)
        return True

    async def poll(self, *, block_ms: int = 1000, pending: bool = False) -> int:
        deliveries = await self.stream.read(self.group, self.name, block_ms=block_ms, pending=pending)
        for delivery in deliveries:
            await self.process(delivery)
        return len(deliveries)

    async def tick(self) -> None:
        """Timers, lapsed run leases and a dead consumer's pending events."""
        await self.evaluator.tick()
        await self.runner.resume_expired()
        await self.runner.run_repeats()
        idle_ms = int(self.config.claim_idle.total_seconds() * 1000)
        for delivery in await self.stream.claim_stale(self.group, self.name, min_idle_ms=idle_ms):
            await self.process(delivery)
        self.last_evaluation = self.clock.now()

    async def poll_pending(self) -> int:
        """Handle this consumer's own unacknowledged entries, oldest first (after a restart or an outage)."""
        after, handled = "0", 0
        while deliveries := await self.stream.read(self.group, self.name, pending=True, after=after):
            for delivery in deliveries:
                await self.process(delivery)
            after = deliveries[-1].message_id
            handled += len(deliveries)
        return handled

    def stop(self) -> None:
        """Graceful stop: the loops finish the event or tick in hand and then return (no new reads)."""
        self.stopping = True
        self._stopped.set()

    async def run(self) -> None:
        """Read and handle events until stopped. After the store was unreachable, the entries this consumer
        had read but not finished come first, so each source's events are still handled in stream order."""
        resume = True  # our own unacknowledged entries from before a restart or an outage go first
        while not self.stopping:
            _raise_if_cancelling()
            try:
                if resume:
                    await self.stream.ensure_group(self.group)
                    await self.poll_pending()
                    resume = False
                if not await self.poll(block_ms=self.block_ms) and not self.block_ms:
                    await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("event stream unavailable", error=exc.__class__.__name__)
                resume = True
                await asyncio.sleep(1)

    async def run_ticks(self) -> None:
        while not self.stopping:
            _raise_if_cancelling()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("tick skipped: store unavailable", error=exc.__class__.__name__)
            except Exception as exc:
                self.metrics.pipeline_errors.labels(stage="tick").inc()
                report_exception(exc)
            with contextlib.suppress(asyncio.TimeoutError):  # the tick period, or until stop()
                await asyncio.wait_for(self._stopped.wait(), self.config.tick.total_seconds())


def _raise_if_cancelling() -> None:
    """A cancellation that arrived while redis-py was reading may surface as a connection error, which the
    loops log and survive; the task still knows it is being cancelled, so stop here instead of polling on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
