"""Every Redis key, stream and group name, in one place.

Keys carry a hash tag per domain ({ev}, {eng}, {inc}, {pb}, {st}, {pr}, {hb}, ...) so every multi-key script
touches a single slot and runs unchanged on Redis Cluster.
"""

from __future__ import annotations

import hashlib

__all__ = ["Keys"]


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class Keys:
    """Key templates under a prefix (tests use a fresh prefix or a fresh database)."""

    def __init__(self, prefix: str = "responder") -> None:
        p = prefix
        self.prefix = p
        # ingest
        self.events = f"{p}:{{ev}}:events"
        self.dead_letters = f"{p}:{{ev}}:dead"
        self.engine_group = "engine"
        # engine
        self.timers = f"{p}:{{eng}}:timers"
        self.suppressed = f"{p}:{{eng}}:suppressed"  # rule groups a silence held back -> json
        self.suppressed_due = f"{p}:{{eng}}:suppressed:due"  # ... -> when their silence ends (ms)
        # silences
        self.silences_all = f"{p}:{{sil}}:all"  # silence id -> end (ms; inf when open-ended)
        # incidents
        self.incident_seq = f"{p}:{{inc}}:seq"
        self.incidents_all = f"{p}:{{inc}}:all"
        # playbook runs
        self.runs_due = f"{p}:{{pb}}:due"
        self.repeats_due = f"{p}:{{pb}}:repeats"
        # status page
        self.status_components = f"{p}:{{st}}:components"
        self.status_history = f"{p}:{{st}}:history"
        self.status_incidents = f"{p}:{{st}}:incidents"
        self.status_incidents_active = f"{p}:{{st}}:incidents:active"
        self.status_incidents_resolved = f"{p}:{{st}}:incidents:resolved"

    def dedup(self, delivery_id: str) -> str:
        return f"{self.prefix}:{{ev}}:dedup:{_digest(delivery_id)}"

    def rule_state(self, member: str) -> str:
        return f"{self.prefix}:{{eng}}:state:{_digest(member)}"

    def rule_series(self, member: str) -> str:
        return f"{self.prefix}:{{eng}}:series:{_digest(member)}"

    def rule_window(self, member: str, part: str) -> str:
        return f"{self.prefix}:{{eng}}:win:{part}:{_digest(member)}"

    def silence(self, silence_id: str) -> str:
        return f"{self.prefix}:{{sil}}:silence:{silence_id}"

    def silence_hits(self, silence_id: str) -> str:
        return f"{self.prefix}:{{sil}}:hits:{silence_id}"

    def silence_hit_count(self, silence_id: str) -> str:
        return f"{self.prefix}:{{sil}}:hits-count:{silence_id}"

    def incident(self, incident_id: str) -> str:
        return f"{self.prefix}:{{inc}}:incident:{incident_id}"

    def timeline(self, incident_id: str) -> str:
        return f"{self.prefix}:{{inc}}:timeline:{incident_id}"

    def incidents_in(self, state: str) -> str:
        return f"{self.prefix}:{{inc}}:state:{state}"

    def open_incident(self, key: str) -> str:
        return f"{self.prefix}:{{inc}}:open:{_digest(key)}"

    def run(self, run_id: str) -> str:
        return f"{self.prefix}:{{pb}}:run:{run_id}"

    def step(self, run_id: str, step: str) -> str:
        return f"{self.prefix}:{{pb}}:step:{run_id}:{_digest(step)}"

    def incident_runs(self, incident_id: str) -> str:
        return f"{self.prefix}:{{pb}}:incident-runs:{incident_id}"

    def budget(self, playbook: str, key: str) -> str:
        return f"{self.prefix}:{{pb}}:budget:{playbook}:{_digest(key)}"

    def remediation_budget(self, kind: str, target: str) -> str:
        return f"{self.prefix}:{{pb}}:remediation:{kind}:{_digest(target)}"

    def provider_state(self, incident_id: str, provider: str) -> str:
        return f"{self.prefix}:{{pb}}:provider:{provider}:{incident_id}"

    # PagerDuty two-way sync: which responder incident an Events API dedup key / a PagerDuty incident belongs to
    def pagerduty_dedup(self, dedup_key: str) -> str:
        return f"{self.prefix}:{{pb}}:pd-dedup:{_digest(dedup_key)}"

    def pagerduty_incident(self, pd_incident_id: str) -> str:
        return f"{self.prefix}:{{pb}}:pd-incident:{_digest(pd_incident_id)}"

    # probes (ids are restricted to [a-z0-9_.-], so they are used as they are)
    def probe_claim(self, probe_id: str, slot: int) -> str:
        return f"{self.prefix}:{{pr}}:claim:{probe_id}:{slot}"

    def probe_results(self, probe_id: str) -> str:
        return f"{self.prefix}:{{pr}}:results:{probe_id}"

    def probe_uptime(self, probe_id: str) -> str:
        return f"{self.prefix}:{{pr}}:uptime:{probe_id}"

    # chatops: approvals and confirmations (next to the runs that wait on them), the audit log, replays
    def approval(self, approval_id: str) -> str:
        return f"{self.prefix}:{{pb}}:approval:{_digest(approval_id)}"

    @property
    def audit(self) -> str:
        return f"{self.prefix}:{{au}}:audit"

    def slack_replay(self, signature: str) -> str:
        return f"{self.prefix}:{{au}}:slack-replay:{_digest(signature)}"

    # webhook rate limits: token buckets per client address and per source, all in one slot ({rl}), so one
    # script takes a request's buckets (and a whole batch of requests') on a Redis Cluster too
    def rate_limit_ip(self, address: str) -> str:
        return f"{self.prefix}:{{rl}}:ip:{address}"

    def rate_limit_source(self, source: str) -> str:
        return f"{self.prefix}:{{rl}}:source:{source}"

    # the dead-man switch: interval n's heartbeat, claimed by the replica that sends it
    def heartbeat(self, slot: int) -> str:
        return f"{self.prefix}:{{hb}}:heartbeat:{slot}"
