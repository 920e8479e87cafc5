"""Soak test, run by hand: 500 events/s through the whole pipeline for 30 minutes, RSS and latency over time.

    python3 tests/bench/soak.py [--minutes 30] [--rate 500] [--workers 1] [--output soak]

Started here, on 127.0.0.1 and free ports (bench_pipeline.py's helpers): a redis-server (persistence off, its
own folder), the recording HTTP sink (its own process) and one `python3 -m responder run` with REDIS_URL and a
soak config. This process is the load generator: Alertmanager v4 webhooks (bearer token), one alert each,
sent open loop at their scheduled times; every latency is measured from the scheduled time, so a stalled
server cannot hide its stall by slowing the sender (no coordinated omission).

The traffic, per scheduled slot (`--rate` per second):
- new (`--new`, default 1%): a unique `SoakOutage` alert; the rule `soak-outage` (group_by labels.req) opens
  an incident whose playbook POSTs to the sink: the end-to-end latency is webhook scheduled -> sink received;
- resolve: the same alert resolved `--resolve-after` (5 s) later, taking the slot of whatever was drawn
  (the incident resolves, so open incidents stay bounded);
- update (`--update`, default 30%): `HighLatency` for 20 services x 5 instances, each a fresh `startsAt`
  (a re-fire, not a redelivery); the rule `soak-latency` (group_by service) keeps 20 incidents open, each
  event is added to one of them;
- noise: the rest, alert names no rule matches (evaluated, stored, nothing else);
- redeliveries (`--duplicates`, default 2% on top of the rate): an earlier noise webhook sent again, as
  Alertmanager does at every group flush; answered 202 as a duplicate, no new event.
Webhook rate limits (ingest.rate_limits, when this version has them) are switched off for the run; the
heartbeat (dead-man switch) pings the sink every 10 s, so its counters are soaked too.

Every 10 s a sample: responder RSS (VmRSS of the process and its workers), CPU, the 202 latency p50/p99 of the
requests completed in the interval, the end-to-end p99 of the deliveries the sink received in it, non-202s,
the stream backlog (XLEN, the group's pending entries and lag), events processed (the engine's
`responder_events_processed_total`), open incidents, the age of the last evaluation, Redis used_memory, and
the CPU that other processes on the machine used meanwhile (a busy neighbour skews the figures).

After the load, the engine is given `--drain` seconds to catch up; then every accepted event must have been
processed: accepted (the 202 replies' `accepted`) = entries added to the stream = processed (the metric, with
one worker) with nothing pending, no lag and no dead letters. Exit 1 otherwise.

Results: tests/bench/results/<output>.json and .md (rewritten every minute while running, final at the end).
pytest never collects this file (tests/bench/conftest.py).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from tests.bench.bench_pipeline import (  # noqa: E402
    RESULTS,
    TOKEN,
    Bench,
    alert,
    cpu_model,
    cpu_seconds,
    family,
    free_port,
    machine_busy_seconds,
    ms,
    percentile,
    proc_status,
    stop,
    version_of,
    wait_http,
    webhook_body,
    webhook_headers,
)

SAMPLE_SECONDS = 10.0
SERVICES = [f"svc-{i:02d}" for i in range(20)]
NOISE_NAMES = ["Watchdog", "KubePodNotReady", "NodeFilesystemAlmostFull", "CPUThrottlingHigh", "TargetDown",
               "KubeJobFailed", "NodeClockSkewDetected", "PrometheusRuleFailures"]


# -- the configuration ------------------------------------------------------------------------------

RULES = """\
rules:
  - id: soak-latency
    description: "latency of a service above its SLO (re-fired all the time: updates an open incident)"
    match: {source: alertmanager, name: HighLatency}
    when: {status: firing}
    group_by: [service]
    severity: warning
  - id: soak-outage
    description: "one incident per outage alert, paged through the sink, resolved by its resolve"
    match: {source: alertmanager, name: SoakOutage}
    when: {status: firing}
    group_by: [labels.req]
    severity: critical
    playbook: soak-page
    resolve: {after: 0s}
"""


def playbooks(sink: str) -> str:
    return f"""\
playbooks:
  - id: soak-page
    steps:
      - name: page
        action: http.request
        with:
          url: "{sink}/responder"
          json: {{req: "{{{{ event.labels.req }}}}", incident: "{{{{ incident.id }}}}"}}
"""


def responder_yaml(folder: Path, port: int, sink: str) -> tuple[str, list[str]]:
    """responder.yaml for the soak; the optional sections depend on what this version of responder has."""
    from responder.config.model import IngestConfig, ResponderConfig

    notes = []
    lines = [f"server: {{host: 127.0.0.1, port: {port}}}", "redis: {max_connections: 256}", "ingest:",
             f"  alertmanager: {{bearer_token: {TOKEN}}}"]
    if "rate_limits" in IngestConfig.model_fields:
        lines.append("  rate_limits: {enabled: false}   # the load generator is one client at 500/s")
        notes.append("ingest.rate_limits off")
    top = ResponderConfig.model_fields
    if "spool" in top:
        lines.append(f"spool: {{dir: {json.dumps(str(folder / 'spool'))}}}")
    if "heartbeat" in top:
        lines.append(f"heartbeat: {{url: \"{sink}/heartbeat\", interval: 10s, max_evaluation_age: 30s}}")
        notes.append("heartbeat to the sink every 10 s")
    return "\n".join(lines) + "\n", notes


def write_config(folder: Path, port: int, sink: str) -> tuple[Path, list[str]]:
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    (folder / "playbooks").mkdir(exist_ok=True)
    (folder / "probes").mkdir(exist_ok=True)
    text, notes = responder_yaml(folder, port, sink)
    (folder / "responder.yaml").write_text(text)
    (folder / "rules" / "soak.yaml").write_text(RULES)
    (folder / "playbooks" / "soak.yaml").write_text(playbooks(sink))
    (folder / "probes" / "soak.yaml").write_text("probes: []\n")
    return folder / "responder.yaml", notes


# -- the traffic ------------------------------------------------------------------------------------

@dataclass
class Traffic:
    """Decides what each scheduled slot sends; deterministic for a seed."""

    rate: float
    new: float
    update: float
    resolve_after: float
    rng: random.Random
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    count: int = 0
    resolves: collections.deque[tuple[int, str]] = field(default_factory=collections.deque)
    noise_sent: collections.deque[bytes] = field(default_factory=lambda: collections.deque(maxlen=2000))
    #: an outage's startsAt, until its resolve is sent (the resolve names the same alert)
    outage_starts: dict[str, str] = field(default_factory=dict)

    def next(self, due_ns: int) -> tuple[str, bytes, str | None]:
        """(kind, body, req of a new outage or None) for the slot due at `due_ns` (monotonic)."""
        self.count += 1
        n = self.count
        starts = (self.started + timedelta(microseconds=n)).isoformat().replace("+00:00", "Z")
        if self.resolves and self.resolves[0][0] <= due_ns:
            _, req = self.resolves.popleft()
            return "resolve", self._body("SoakOutage", {"req": req}, req, starts="", status="resolved"), None
        draw = self.rng.random()
        if draw < self.new:
            req = f"o{n}"
            self.resolves.append((due_ns + int(self.resolve_after * 1e9), req))
            return "new", self._body("SoakOutage", {"req": req}, req, starts=starts), req
        if draw < self.new + self.update:
            service = SERVICES[n % len(SERVICES)]
            instance = f"{service}-{(n // len(SERVICES)) % 5}:9100"
            labels = {"service": service, "instance": instance}
            return "update", self._body("HighLatency", labels, f"{service}/{instance}", starts=starts), None
        name = NOISE_NAMES[n % len(NOISE_NAMES)]
        labels = {"service": f"svc-{n % 40:02d}", "instance": f"node-{n % 200}:9100", "job": "node"}
        body = self._body(name, labels, f"{name}/{labels['instance']}", starts=starts)
        self.noise_sent.append(body)
        return "noise", body, None

    def redelivery(self) -> bytes | None:
        return self.rng.choice(self.noise_sent) if self.noise_sent else None

    def _body(self, name: str, labels: dict[str, str], series: str, *, starts: str, status: str = "firing") -> bytes:
        body = webhook_body(alert(series, name, self.started), "alertmanager")  # then this alert's own labels
        item = body["alerts"][0]
        item["labels"] = {"alertname": name, "severity": "critical" if name == "SoakOutage" else "warning",
                          "env": "production", "namespace": "prod", **labels}
        item["fingerprint"] = hashlib.sha256(series.encode()).hexdigest()[:16]  # stable per series, as AM's
        if status == "resolved":  # the resolve of the alert that fired: the firing one's startsAt, an endsAt
            item["startsAt"] = self.outage_starts.pop(labels["req"])
            item["endsAt"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        else:
            item["startsAt"] = starts
            if name == "SoakOutage":
                self.outage_starts[labels["req"]] = starts
        item["status"] = status
        body["status"] = status
        body["commonLabels"] = item["labels"]
        return json.dumps(body).encode()


# -- the run ----------------------------------------------------------------------------------------

@dataclass
class Bucket:
    """What happened in one sample interval."""

    sent: int = 0
    redeliveries: int = 0
    accepted_events: int = 0
    duplicates: int = 0
    errors: int = 0
    error_kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies_ns: list[float] = field(default_factory=list)


@dataclass
class Totals:
    sent: int = 0
    redeliveries: int = 0
    accepted_events: int = 0
    duplicates: int = 0
    errors: int = 0
    error_kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    delivered: int = 0


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


class Soak:
    def __init__(self, args: argparse.Namespace, bench: Bench, base: str, pid: int, redis: aioredis.Redis) -> None:
        self.args = args
        self.bench = bench
        self.base = base
        self.pid = pid
        self.redis = redis
        self.bucket = Bucket()
        self.totals = Totals()
        self.samples: list[dict[str, Any]] = []
        self.outages: dict[str, int] = {}  # req -> scheduled send time (monotonic ns), until delivered
        self.e2e_all: list[float] = []
        self.traffic = Traffic(args.rate, args.new, args.update, args.resolve_after, random.Random(args.seed))
        self.t0 = 0
        self.stream = ""
        self.dead = ""
        self.meta: dict[str, Any] = {}

    # one request
    async def send(self, session: aiohttp.ClientSession, body: bytes, due_ns: int, kind: str,
                   req: str | None) -> None:
        if req is not None:
            self.outages[req] = due_ns
        status, accepted, duplicates, error = 0, 0, 0, ""
        try:
            async with session.post(f"{self.base}/hooks/alertmanager", data=body,
                                    headers=webhook_headers(body, "alertmanager")) as reply:
                status = reply.status
                payload = await reply.json(content_type=None) if status == 202 else None
                await reply.read()
            if isinstance(payload, dict):
                accepted = int(payload.get("accepted", 0))
                duplicates = len(payload.get("duplicates", []))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            error = exc.__class__.__name__
        done = time.monotonic_ns()
        bucket, totals = self.bucket, self.totals
        if status == 202:
            bucket.latencies_ns.append(done - due_ns)
            bucket.accepted_events += accepted
            bucket.duplicates += duplicates
            totals.accepted_events += accepted
            totals.duplicates += duplicates
        else:
            what = str(status) if status else error
            bucket.errors += 1
            bucket.error_kinds[what] += 1
            totals.errors += 1
            totals.error_kinds[what] += 1
            if req is not None:
                self.outages.pop(req, None)  # refused: nothing to wait for
        if kind == "redelivery":
            bucket.redeliveries += 1
            totals.redeliveries += 1

    async def load(self, session: aiohttp.ClientSession, seconds: float) -> None:
        """Open loop: slot i is due at t0 + i/rate; redeliveries are extra slots between them."""
        interval = 1e9 / self.args.rate
        end = self.t0 + int(seconds * 1e9)
        tasks: set[asyncio.Task[None]] = set()
        rng = random.Random(self.args.seed + 1)
        i = 0
        while True:
            due = self.t0 + int(i * interval)
            if due >= end:
                break
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            kind, body, req = self.traffic.next(due)
            jobs = [(kind, body, req)]
            if rng.random() < self.args.duplicates:
                again = self.traffic.redelivery()
                if again is not None:
                    jobs.append(("redelivery", again, None))
            for what, data, outage in jobs:
                self.bucket.sent += 1
                self.totals.sent += 1
                self.totals.kinds[what] += 1
                task = asyncio.create_task(self.send(session, data, due, what, outage))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            i += 1
        if tasks:
            await asyncio.gather(*tasks)

    async def deliveries(self) -> list[float]:
        """End-to-end latencies (ns) of the outages the sink received since the last call."""
        async with aiohttp.ClientSession() as session, \
                session.get(f"{self.bench.sink}/_dump", params={"clear": "1"}) as reply:
            records = (await reply.json())["records"]
        out: list[float] = []
        for at, _kind, req in records:
            sent = self.outages.pop(req, None)
            if sent is not None:
                out.append(at - sent)
        self.totals.delivered += len(out)
        self.e2e_all += out
        return out

    async def scrape(self, session: aiohttp.ClientSession) -> dict[str, float]:
        try:
            async with session.get(f"{self.base}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as reply:
                return parse_metrics(await reply.text())
        except (aiohttp.ClientError, TimeoutError):
            return {}

    async def stream_state(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            info["xlen"] = int(await self.redis.xlen(self.stream))
            stream = await self.redis.xinfo_stream(self.stream)
            info["entries_added"] = int(stream.get("entries-added", 0))
            for group in await self.redis.xinfo_groups(self.stream):
                if group.get("name") == "engine":
                    info["pending"] = int(group.get("pending", 0))
                    info["lag"] = group.get("lag")
                    info["entries_read"] = group.get("entries-read")
            info["dead_letters"] = int(await self.redis.xlen(self.dead))
            memory = await self.redis.info("memory")
            info["redis_used_memory_mb"] = round(int(memory["used_memory"]) / 2**20, 1)
            info["redis_keys"] = int(await self.redis.dbsize())
        return info

    def rss_mb(self) -> float:
        total = 0.0
        for pid in family(self.pid):
            with contextlib.suppress(OSError, KeyError):
                total += proc_status(pid)["VmRSS"]
        return round(total, 1)

    async def sampler(self, session: aiohttp.ClientSession, stop_at: int) -> None:
        """Every SAMPLE_SECONDS until `stop_at` (monotonic ns): one sample."""
        k = 0
        ours = sorted({*family(self.pid), *(p.pid for p in self.bench.procs)})
        cpu_before = cpu_seconds(family(self.pid))
        busy_before = machine_busy_seconds() - cpu_seconds(ours) - time.process_time()
        last_write = time.monotonic()
        while True:
            k += 1
            due = self.t0 + int(k * SAMPLE_SECONDS * 1e9)
            if due > stop_at:
                return
            await asyncio.sleep(max(0.0, (due - time.monotonic_ns()) / 1e9))
            bucket, self.bucket = self.bucket, Bucket()
            e2e = await self.deliveries()
            metrics = await self.scrape(session)
            stream = await self.stream_state()
            cpu_now = cpu_seconds(family(self.pid))
            busy_now = machine_busy_seconds() - cpu_seconds(ours) - time.process_time()
            open_incidents = sum(v for k2, v in metrics.items() if k2.startswith("responder_incidents{")
                                 and 'state="resolved"' not in k2)
            sample = {
                "t_s": round((time.monotonic_ns() - self.t0) / 1e9, 1),
                "rss_mb": self.rss_mb(),
                "cpu_cores": round((cpu_now - cpu_before) / SAMPLE_SECONDS, 2),
                "sent": bucket.sent, "redeliveries": bucket.redeliveries, "accepted_events": bucket.accepted_events,
                "non_202": bucket.errors, "non_202_kinds": dict(bucket.error_kinds),
                "ingest_p50_ms": ms(percentile(bucket.latencies_ns, 50)),
                "ingest_p99_ms": ms(percentile(bucket.latencies_ns, 99)),
                "ingest_max_ms": ms(max(bucket.latencies_ns) if bucket.latencies_ns else None),
                "e2e_n": len(e2e), "e2e_p50_ms": ms(percentile(e2e, 50)), "e2e_p99_ms": ms(percentile(e2e, 99)),
                "outages_waiting": len(self.outages),
                "processed_total": metrics.get("responder_events_processed_total"),
                "accepted_total": self.totals.accepted_events,
                "open_incidents": open_incidents if metrics else None,
                "eval_age_s": metrics.get("responder_last_evaluation_age_seconds"),
                "heartbeats_sent": metrics.get('responder_heartbeats_total{outcome="sent"}'),
                **stream,
                "foreign_cpu_cores": round(max(0.0, busy_now - busy_before) / SAMPLE_SECONDS, 2),
            }
            cpu_before, busy_before = cpu_now, busy_now
            self.samples.append(sample)
            print(f"  t={sample['t_s']:>6}s rss {sample['rss_mb']} MB cpu {sample['cpu_cores']}; 202 p50/p99 "
                  f"{sample['ingest_p50_ms']}/{sample['ingest_p99_ms']} ms; e2e p99 {sample['e2e_p99_ms']} ms "
                  f"(n={len(e2e)}); accepted {sample['accepted_events']}, non-202 {bucket.errors}; backlog lag "
                  f"{stream.get('lag')} pending {stream.get('pending')}; processed {sample['processed_total']}/"
                  f"{self.totals.accepted_events}; redis {stream.get('redis_used_memory_mb')} MB; "
                  f"foreign cpu {sample['foreign_cpu_cores']}", flush=True)
            if time.monotonic() - last_write > 60:
                last_write = time.monotonic()
                write(self.args, self.meta, self.samples, None, complete=False)

    async def drain(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        """Until every accepted event is processed (and the outages delivered), or --drain seconds."""
        started = time.monotonic()
        while True:
            metrics = await self.scrape(session)
            stream = await self.stream_state()
            await self.deliveries()
            processed = metrics.get("responder_events_processed_total")
            done = stream.get("lag") in (0, None) and stream.get("pending") == 0 and (
                self.args.workers > 1 or processed == self.totals.accepted_events)
            if (done and not self.outages) or time.monotonic() - started > self.args.drain:
                return {"drain_s": round(time.monotonic() - started, 1), "processed_total": processed,
                        "undelivered_outages": len(self.outages), **stream}
            await asyncio.sleep(1)


# -- results ----------------------------------------------------------------------------------------

def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value), per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    if var == 0:
        return None
    return round(sum((p[0] - mx) * (p[1] - my) for p in points) / var * 3600, 2)


def summarize(samples: list[dict[str, Any]], totals: Totals, e2e_all: list[float], end: dict[str, Any],
              workers: int) -> dict[str, Any]:
    def series(key: str) -> list[float]:
        return [s[key] for s in samples if s.get(key) is not None]

    rss = series("rss_mb")
    p99 = series("ingest_p99_ms")
    e2e99 = series("e2e_p99_ms")
    # the first minute is warm-up for the slope (imports, caches, pools filling)
    settled = [(s["t_s"], s["rss_mb"]) for s in samples if s["t_s"] > 60] or [(s["t_s"], s["rss_mb"]) for s in samples]
    processed = end.get("processed_total")
    lost_metric = None if processed is None or workers > 1 else totals.accepted_events - int(processed)
    problems = []
    if lost_metric:
        problems.append(f"{lost_metric} accepted events not processed (responder_events_processed_total)")
    if end.get("entries_added") is not None and end["entries_added"] != totals.accepted_events:
        problems.append(f"the stream got {end['entries_added']} entries for {totals.accepted_events} accepted events")
    if end.get("pending"):
        problems.append(f"{end['pending']} entries still pending in the engine's group")
    if end.get("lag") not in (0, None):
        problems.append(f"the engine's group lags {end['lag']} entries behind the stream")
    if end.get("dead_letters"):
        problems.append(f"{end['dead_letters']} events dead-lettered")
    return {
        "rss_mb": {"start": rss[0] if rss else None, "end": rss[-1] if rss else None, "max": max(rss, default=None),
                   "slope_mb_per_hour": slope_per_hour(settled)},
        "ingest_p99_ms": {"start": p99[0] if p99 else None, "end": p99[-1] if p99 else None,
                          "max": max(p99, default=None)},
        "e2e_p99_ms": {"start": e2e99[0] if e2e99 else None, "end": e2e99[-1] if e2e99 else None,
                       "max": max(e2e99, default=None), "overall": ms(percentile(e2e_all, 99)),
                       "overall_p50": ms(percentile(e2e_all, 50))},
        "redis_used_memory_mb": {"start": samples[0].get("redis_used_memory_mb") if samples else None,
                                 "end": end.get("redis_used_memory_mb"), "keys_end": end.get("redis_keys")},
        "webhooks_sent": totals.sent, "by_kind": dict(totals.kinds), "redeliveries": totals.redeliveries,
        "accepted_events": totals.accepted_events, "duplicates_answered": totals.duplicates,
        "non_202": totals.errors, "non_202_kinds": dict(totals.error_kinds),
        "processed": processed, "stream_entries_added": end.get("entries_added"), "pending_at_end": end.get("pending"),
        "lag_at_end": end.get("lag"), "dead_letters": end.get("dead_letters"),
        "lost": lost_metric, "outages_delivered": totals.delivered,
        "outages_undelivered": end.get("undelivered_outages"), "drain_s": end.get("drain_s"),
        "ok": not problems, "problems": problems,
    }


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def write(args: argparse.Namespace, meta: dict[str, Any], samples: list[dict[str, Any]],
          summary: dict[str, Any] | None, *, complete: bool = True) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "complete": complete, "summary": summary, "samples": samples}
    (RESULTS / f"{args.output}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    lines = [
        f"# Soak: {args.rate:g} events/s through the whole pipeline for {args.minutes:g} min"
        + ("" if complete else " (INCOMPLETE: still running or interrupted)"),
        "",
        f"`{meta['command']}` — run {meta['date']} on {meta['machine']}; Python {meta['python']}, redis-server "
        f"{meta['redis']}, aiohttp {meta['aiohttp']}, redis-py {meta['redis_py']}, load generator loop "
        f"{meta['loop']}, responder workers {args.workers}, responder {meta['responder']} (git {meta['git']}).",
        "",
        f"One `responder run` on one redis-server (persistence off), the sink and this load generator share the "
        f"machine. Alertmanager v4 webhooks, one alert each, open loop at {args.rate:g}/s (latencies from the "
        f"scheduled send time): new outage {args.new:.0%} (incident + playbook `http.request` to the sink, resolved "
        f"{args.resolve_after:g} s later), update {args.update:.0%} (20 open incidents), the rest noise (no rule); "
        f"plus {args.duplicates:.0%} redeliveries (duplicates). Config: {', '.join(meta['config_notes']) or '-'}. "
        "A sample every 10 s; ingest p50/p99 of the 202s completed in the interval; e2e p99 of the deliveries the "
        "sink received in it; `foreign` is CPU other processes on the machine used (cores).",
        "",
    ]
    if summary is not None:
        s = summary
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(s["by_kind"].items()))
        lines += [
            "## Summary",
            "",
            f"**{'OK' if s['ok'] else 'FAILED'}**: " + ("every accepted event was processed"
                                                       if s["ok"] else "; ".join(s["problems"])),
            "",
            "| figure | start | end | max | other |",
            "| --- | --- | --- | --- | --- |",
            f"| responder RSS MB | {fmt(s['rss_mb']['start'])} | {fmt(s['rss_mb']['end'])} | {fmt(s['rss_mb']['max'])} "
            f"| slope {fmt(s['rss_mb']['slope_mb_per_hour'])} MB/h (least squares over the samples after the first "
            "minute, if any) |",
            f"| ingest 202 p99 ms | {fmt(s['ingest_p99_ms']['start'])} | {fmt(s['ingest_p99_ms']['end'])} | "
            f"{fmt(s['ingest_p99_ms']['max'])} | |",
            f"| webhook → sink p99 ms | {fmt(s['e2e_p99_ms']['start'])} | {fmt(s['e2e_p99_ms']['end'])} | "
            f"{fmt(s['e2e_p99_ms']['max'])} | whole run p50 {fmt(s['e2e_p99_ms']['overall_p50'])}, p99 "
            f"{fmt(s['e2e_p99_ms']['overall'])} |",
            f"| Redis used_memory MB | {fmt(s['redis_used_memory_mb']['start'])} | "
            f"{fmt(s['redis_used_memory_mb']['end'])} | | {fmt(s['redis_used_memory_mb']['keys_end'])} keys at the "
            "end (event dedup keys live engine.dedup_ttl, 24 h by default; the stream is capped at "
            "engine.stream_maxlen; timelines are kept) |",
            "",
            "| total | count |",
            "| --- | --- |",
            f"| webhooks sent | {s['webhooks_sent']} ({kinds}) |",
            f"| events accepted (202 `accepted`) | {s['accepted_events']} |",
            f"| redeliveries answered as duplicates | {s['duplicates_answered']} |",
            f"| non-202 | {s['non_202']} {s['non_202_kinds'] or ''} |",
            f"| entries added to the stream | {fmt(s['stream_entries_added'])} |",
            f"| processed (responder_events_processed_total) | {fmt(s['processed'])} |",
            f"| lost (accepted - processed) | {fmt(s['lost'])} |",
            f"| pending / lag / dead letters at the end | {fmt(s['pending_at_end'])} / {fmt(s['lag_at_end'])} / "
            f"{fmt(s['dead_letters'])} |",
            f"| outages delivered to the sink / not | {s['outages_delivered']} / {fmt(s['outages_undelivered'])} |",
            f"| drain after the load | {fmt(s['drain_s'])} s |",
            "",
        ]
    lines += [
        "## Time series",
        "",
        "| t s | RSS MB | CPU cores | sent | accepted | non-202 | 202 p50 ms | 202 p99 ms | e2e n | e2e p99 ms | "
        "XLEN | pending | lag | processed | open inc. | eval age s | Redis MB | Redis keys | foreign |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
        "| --- |",
    ]
    for x in samples:
        lines.append("| " + " | ".join(fmt(x.get(k)) for k in (
            "t_s", "rss_mb", "cpu_cores", "sent", "accepted_events", "non_202", "ingest_p50_ms", "ingest_p99_ms",
            "e2e_n", "e2e_p99_ms", "xlen", "pending", "lag", "processed_total", "open_incidents", "eval_age_s",
            "redis_used_memory_mb", "redis_keys", "foreign_cpu_cores")) + " |")
    (RESULTS / f"{args.output}.md").write_text("\n".join(lines) + "\n")


def metadata(args: argparse.Namespace, notes: list[str]) -> dict[str, Any]:
    import redis

    from responder import __version__ as responder_version

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python3 tests/bench/soak.py" + ("" if not sys.argv[1:] else " " + " ".join(sys.argv[1:])),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()})",
        "python": platform.python_version(),
        "redis": version_of(["redis-server", "--version"],
                            lambda s: next(p.split("=")[1] for p in s.split() if p.startswith("v="))),
        "aiohttp": aiohttp.__version__, "redis_py": redis.__version__, "loop": loop,
        "responder": responder_version,
        "git": version_of(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], lambda s: s.strip())
        + (" + uncommitted changes" if version_of(["git", "-C", str(ROOT), "status", "--porcelain"],
                                                  lambda s: s.strip()) else ""),
        "args": vars(args), "config_notes": notes,
    }


# -- main -------------------------------------------------------------------------------------------

async def amain(args: argparse.Namespace) -> int:
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    print(f"logs in {folder}", flush=True)
    bench = Bench(args, folder)
    proc = None
    code = 1
    try:
        bench.start_base()  # redis-server and the sink
        port = free_port()
        config, notes = write_config(folder / "responder", port, bench.sink)
        argv = [sys.executable, "-m", "responder", "run", "--config", str(config)]
        if args.workers > 1:
            argv += ["--workers", str(args.workers)]
        env = {**os.environ, "REDIS_URL": bench.redis_url, "PYTHONPATH": str(ROOT)}
        proc = bench.spawn(argv, "responder.log", env)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz", 180, proc)
        redis = aioredis.Redis(port=bench.redis_port, decode_responses=True)
        soak = Soak(args, bench, base, proc.pid, redis)
        from responder.store.keys import Keys

        keys = Keys("responder")
        soak.stream, soak.dead = keys.events, keys.dead_letters
        soak.meta = metadata(args, notes)
        connector = aiohttp.TCPConnector(limit=2048)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
            await asyncio.sleep(2)  # the first ticks, the consumer group
            soak.t0 = time.monotonic_ns()
            seconds = args.minutes * 60
            print(f"load: {args.rate:g}/s for {args.minutes:g} min", flush=True)
            sampler = asyncio.create_task(soak.sampler(session, soak.t0 + int(seconds * 1e9)))
            await soak.load(session, seconds)
            await sampler
            if proc.poll() is not None:
                print(f"responder exited with {proc.returncode} during the run", flush=True)
            print(f"drain: up to {args.drain:g} s", flush=True)
            end = await soak.drain(session)
        await redis.aclose()
        summary = summarize(soak.samples, soak.totals, soak.e2e_all, end, args.workers)
        if proc.poll() is not None:
            summary["ok"] = False
            summary["problems"].append(f"responder exited with {proc.returncode}")
        write(args, soak.meta, soak.samples, summary)
        print(json.dumps(summary, indent=1, default=str), flush=True)
        print(f"wrote {RESULTS / args.output}.md and .json", flush=True)
        code = 0 if summary["ok"] else 1
    finally:
        stop(proc)
        bench.close()
        if code == 0 and not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(folder, ignore_errors=True)
    return code


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the load (default 30)")
    parser.add_argument("--rate", type=float, default=500.0, help="events per second, open loop (default 500)")
    parser.add_argument("--new", type=float, default=0.01, help="share of slots that open an incident (default 0.01)")
    parser.add_argument("--update", type=float, default=0.30, help="share of slots that update an open incident")
    parser.add_argument("--duplicates", type=float, default=0.02, help="redeliveries, on top of the rate")
    parser.add_argument("--resolve-after", type=float, default=5.0, help="seconds from an outage to its resolve")
    parser.add_argument("--drain", type=float, default=180.0, help="seconds allowed for the backlog after the load")
    parser.add_argument("--workers", type=int, default=1, help="responder run --workers N")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--output", default="soak", help="results file name under tests/bench/results (no suffix)")
    args = parser.parse_args(argv)
    if not 0 <= args.new + args.update <= 1:
        parser.error("--new + --update must be between 0 and 1")
    return args


def main() -> int:
    args = parse_args(sys.argv[1:])
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (apt-get install -y redis-server)", file=sys.stderr)
        return 2
    try:
        import uvloop

        return uvloop.run(amain(args))
    except ImportError:
        return asyncio.run(amain(args))


if __name__ == "__main__":
    raise SystemExit(main())
