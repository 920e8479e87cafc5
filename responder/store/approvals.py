"""ApprovalStore: questions waiting for a person's decision — approval steps and rollback/restart confirmations.

One hash per question: `doc` (what was asked, written once), `message` (where the buttons were posted) and
`decision` (written once, atomically: the first click wins, a second click or a late timeout finds it taken).
The waiting run reads the decision from here, so it survives restarts and is seen by every replica.
"""

from __future__ import annotations

import json
from typing import Any

from responder.store.keys import Keys
from responder.store.redis import Redis

__all__ = ["ApprovalStore"]

# KEYS: 1 approval hash. ARGV: 1 decision json
_DECIDE = """
if redis.call('HEXISTS', KEYS[1], 'doc') == 0 then return {'missing', ''} end
if redis.call('HSETNX', KEYS[1], 'decision', ARGV[1]) == 1 then return {'ok', ARGV[1]} end
return {'taken', redis.call('HGET', KEYS[1], 'decision')}
"""


class ApprovalStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._decide = redis.register_script(_DECIDE)

    async def create(self, approval_id: str, doc: dict[str, Any], ttl_ms: int) -> bool:
        """Write the question once (a retried ask finds it there: False); it expires after `ttl_ms`."""
        key = self.keys.approval(approval_id)
        created = bool(await self.redis.hsetnx(key, "doc", json.dumps(doc)))
        if created:
            await self.redis.pexpire(key, ttl_ms)
        return created

    async def get(self, approval_id: str) -> dict[str, Any] | None:
        """The question with `message` and `decision` (None until set); None when unknown or expired."""
        raw = await self.redis.hgetall(self.keys.approval(approval_id))
        if not raw or "doc" not in raw:
            return None
        return {**json.loads(raw["doc"]), "message": json.loads(raw["message"]) if raw.get("message") else None,
                "decision": json.loads(raw["decision"]) if raw.get("decision") else None,
                "run_id": raw.get("run_id")}

    async def set_message(self, approval_id: str, channel: str, ts: str) -> None:
        await self.redis.hset(self.keys.approval(approval_id), "message", json.dumps({"channel": channel, "ts": ts}))

    async def set_run(self, approval_id: str, run_id: str) -> None:
        """The run a confirmed command started (shown to a late second click)."""
        await self.redis.hset(self.keys.approval(approval_id), "run_id", run_id)

    async def decision(self, approval_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(self.keys.approval(approval_id), "decision")
        return json.loads(raw) if raw else None

    async def decide(self, approval_id: str, decision: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """Record the decision unless one exists: ('ok', it), ('taken', the earlier one) or ('missing', None)."""
        status, raw = await self._decide(keys=[self.keys.approval(approval_id)], args=[json.dumps(decision)])
        return str(status), json.loads(raw) if raw else None
