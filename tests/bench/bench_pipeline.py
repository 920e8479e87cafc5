"""Benchmark, run by hand: responder's pipeline side by side with Prometheus Alertmanager.

    python3 tests/bench/bench_pipeline.py [--quick] [--workers N] [--parts a,b,c,d] [--clients 32]

Every process is started here, on 127.0.0.1 and free ports: a redis-server (persistence off), a
recording HTTP sink (its own process), responder (`python3 -m responder run` with REDIS_URL and a
bench config: one rule per alert name, `group_by: [labels.req]`, and a playbook whose first step is
an `http.request` to the sink), and Debian's `prometheus-alertmanager` (clustering off, its own
storage folder, `group_wait: 0s`, `group_by: ['...']`, a webhook receiver pointing at the sink).
The load generator is this process (aiohttp client, uvloop when installed). Each load runs against a
freshly started responder on an empty Redis and a freshly started Alertmanager, one system at a time.

- (a) durable ingest: Alertmanager v4 webhooks with a bearer token (`--source grafana`: Grafana's, HMAC
  signed) to POST /hooks/{source}; the same alert as a one-element list to Alertmanager's
  /api/v2/alerts. Accepted requests/s and p50/p99 of the 202 (Alertmanager: 200) at fixed rates
  (open loop) and at the maximum (closed loop, `--clients` concurrent clients). Every alert is unique
  (label `req`), so nothing is deduplicated away.
- (b) end to end, from the same runs at 100 and 500/s: from the moment a request is sent to the
  moment the sink receives responder's first playbook `http.request` for that alert, and
  Alertmanager's webhook notification for that alert.
- (c) rule evaluation in this process: the Services' evaluator with N rules on the bench redis-server,
  `handle(event)` timed for unique firing events matching one rule each (each opens an incident; the
  rules have no playbook), and the index lookup alone.
- (d) RSS: responder with 10,000 rules, 1,000 HTTP probes (every 30 s, at the sink) and 10,000 open
  incidents (10,000 unique firing alerts sent and processed, each run's playbook done): VmRSS and
  VmHWM from /proc/<pid>/status.

Results: tests/bench/results/pipeline.json and pipeline.md. pytest never collects this file
(tests/bench/conftest.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TOKEN = "bench-token"  # Alertmanager's http_config bearer token, as responder's ingest.alertmanager expects
HMAC_SECRET = "bench-hmac-secret"  # Grafana contact point's HMAC secret
AM_BINARY = "prometheus-alertmanager"


# -- small helpers ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def wait_http(url: str, seconds: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {seconds} s")


def stop(proc: subprocess.Popen[bytes] | None, *, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def version_of(argv: list[str], pick: Callable[[str], str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
        return pick(out.stdout + out.stderr)
    except (OSError, subprocess.TimeoutExpired, StopIteration, IndexError):
        return "?"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(rest.split()[0]) / 1024, 1)
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes and their children, in seconds."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def family(pid: int) -> list[int]:
    """A process and its direct children (responder --workers N forks N)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    extra = [int(p) for p in children.read_text().split()] if children.exists() else []
    return [pid, *extra]


# -- the sink: its own process ----------------------------------------------------------------------

def serve_sink(port: int) -> None:
    """Record when each alert arrives: responder's playbook step (/responder) and Alertmanager (/am)."""
    records: list[tuple[int, str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        now = time.monotonic_ns()
        body = await request.read()
        if request.path == "/responder":
            records.append((now, "responder", json.loads(body)["req"]))
        elif request.path == "/am":
            for alert in json.loads(body)["alerts"]:
                records.append((now, "am", alert["labels"]["req"]))
        elif request.path == "/health":
            return web.json_response({"status": "healthy", "checks": {"database": "healthy"}})
        return web.Response(text="ok")

    async def dump(request: web.Request) -> web.Response:
        out = list(records)
        if request.query.get("clear"):
            records.clear()
        return web.json_response({"records": out})

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"count": len(records)})

    app = web.Application(client_max_size=1 << 24)
    app.router.add_get("/_dump", dump)
    app.router.add_get("/_count", count)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


# -- payloads ---------------------------------------------------------------------------------------

def alert(req: str, name: str, now: datetime) -> dict[str, Any]:
    """One Prometheus alert as Alertmanager sees it (the labels a real rule would carry)."""
    return {
        "labels": {"alertname": name, "req": req, "severity": "critical", "service": "api", "env": "production",
                   "job": "api", "instance": "api-7f9c6d8b5-x2x4q:9100", "namespace": "prod"},
        "annotations": {"summary": f"{name}: error rate above 5% on api", "value": "0.07",
                        "description": "The API's 5xx ratio over 5m is 7%, above the 5% threshold.",
                        "runbook_url": "https://runbooks.example.com/api-error-rate"},
        "startsAt": now.isoformat().replace("+00:00", "Z"),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=job%3Aerrors%3Aratio5m%7Bjob%3D%22api%22%7D+%3E+0.05",
    }


def webhook_body(a: dict[str, Any], source: str) -> dict[str, Any]:
    """Alertmanager's webhook_config payload (version 4) for one alert; Grafana's shape for --source grafana."""
    item = {"status": "firing", **a, "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": hashlib.sha256(a["labels"]["req"].encode()).hexdigest()[:16]}
    body: dict[str, Any] = {
        "receiver": "responder", "status": "firing", "alerts": [item],
        "groupLabels": {"alertname": a["labels"]["alertname"]}, "commonLabels": a["labels"],
        "commonAnnotations": a["annotations"], "externalURL": "http://alertmanager:9093",
        "groupKey": "{}/{}:{alertname=\"" + a["labels"]["alertname"] + "\"}", "truncatedAlerts": 0,
    }
    if source == "grafana":
        item["values"] = {"A": 0.07}
        body.update(version="1", orgId=1, state="alerting", title=f"[FIRING:1] {a['labels']['alertname']}",
                    message=a["annotations"]["summary"])
    else:
        body["version"] = "4"
    return body


def webhook_headers(body: bytes, source: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0"}
    if source == "grafana":
        ts = str(int(time.time()))
        sig = hmac.new(HMAC_SECRET.encode(), ts.encode() + b":" + body, hashlib.sha256).hexdigest()
        headers.update({"X-Grafana-Alerting-Signature": sig, "X-Grafana-Alerting-Timestamp": ts,
                        "User-Agent": "Grafana"})
    else:
        headers["Authorization"] = f"Bearer {TOKEN}"
    return headers


# -- configs ----------------------------------------------------------------------------------------

def rules_yaml(count: int, source: str, playbook: str | None) -> str:
    lines = ["rules:"]
    tail = f", playbook: {playbook}" if playbook else ""
    for i in range(count):
        lines.append(f"  - {{id: bench-{i:05d}, match: {{source: {source}, name: Bench{i:05d}}}, "
                     f"when: {{status: firing}}, group_by: [labels.req], severity: critical{tail}}}")
    return "\n".join(lines) + "\n"


def probes_yaml(count: int, url: str) -> str:
    lines = ["probes:"]
    for i in range(count):
        lines.append(f"  - {{id: bench-{i:04d}, http: {{url: \"{url}\", expect: {{status: 200}}}}, every: 30s, "
                     "timeout: 5s, service: bench}")
    return "\n".join(lines) + "\n"


def write_responder_config(folder: Path, *, port: int, sink: str, rules: int, probes: int, source: str) -> Path:
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    (folder / "playbooks").mkdir(exist_ok=True)
    (folder / "probes").mkdir(exist_ok=True)
    (folder / "responder.yaml").write_text(f"""\
server: {{host: 127.0.0.1, port: {port}}}
redis: {{max_connections: 256}}
ingest:
  alertmanager: {{bearer_token: {TOKEN}}}
  grafana: {{hmac_secret: {HMAC_SECRET}}}
  # the load comes from one address at thousands/s: the limiter still runs (its cost is measured), never refuses
  rate_limits: {{per_ip: {{requests: 1000000000, per: 1m}}}}
""")
    (folder / "rules" / "bench.yaml").write_text(rules_yaml(rules, source, "bench-notify"))
    (folder / "playbooks" / "bench.yaml").write_text(f"""\
playbooks:
  - id: bench-notify
    steps:
      - name: notify
        action: http.request
        with:
          url: "{sink}/responder"
          json: {{req: "{{{{ event.labels.req }}}}", incident: "{{{{ incident.id }}}}"}}
""")
    (folder / "probes" / "bench.yaml").write_text(probes_yaml(probes, f"{sink}/health") if probes else "probes: []\n")
    return folder / "responder.yaml"


def alertmanager_config(sink: str) -> str:
    return f"""\
route:
  receiver: sink
  group_by: ['...']
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs:
      - url: {sink}/am
        send_resolved: false
"""


# -- processes --------------------------------------------------------------------------------------

@dataclass
class Bench:
    args: argparse.Namespace
    folder: Path
    redis_port: int = 0
    sink_port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def sink(self) -> str:
        return f"http://127.0.0.1:{self.sink_port}"

    def spawn(self, argv: list[str], log: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = open(self.folder / log, "ab")  # noqa: SIM115 (the child keeps it)
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.folder)
        out.close()
        self.procs.append(proc)
        return proc

    def start_base(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed: apt-get install -y redis-server")
        self.redis_port = free_port()
        self.spawn([binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                    "no", "--protected-mode", "yes"], "redis.log")
        self.sink_port = free_port()
        self.spawn([sys.executable, __file__, "--serve-sink", str(self.sink_port)], "sink.log")
        wait_http(f"{self.sink}/_count")
        self.redis_cli("PING")

    def redis_cli(self, *command: str) -> Any:
        import redis

        client = redis.Redis(port=self.redis_port, decode_responses=True)
        try:
            for _ in range(100):
                try:
                    return client.execute_command(*command)
                except redis.ConnectionError:
                    time.sleep(0.05)
            raise RuntimeError("redis-server did not start")
        finally:
            client.close()

    @contextlib.contextmanager
    def responder(self, *, rules: int, probes: int = 0, workers: int = 1,
                  name: str = "responder") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
        self.redis_cli("FLUSHALL")
        port = free_port()
        folder = self.folder / f"{name}-{port}"
        config = write_responder_config(folder, port=port, sink=self.sink, rules=rules, probes=probes,
                                        source=self.args.source)
        env = {**os.environ, "REDIS_URL": self.redis_url, "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-m", "responder", "run", "--config", str(config)]
        if workers > 1:
            argv += ["--workers", str(workers)]
        proc = self.spawn(argv, f"{name}-{port}.log", env)
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz", 180, proc)
            yield f"http://127.0.0.1:{port}", proc
        finally:
            stop(proc)
            self.procs.remove(proc)

    @property
    def redis_pid(self) -> int:
        return self.procs[0].pid

    @contextlib.contextmanager
    def alertmanager(self) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
        port = free_port()
        folder = self.folder / f"alertmanager-{port}"
        folder.mkdir()
        (folder / "alertmanager.yml").write_text(alertmanager_config(self.sink))
        proc = self.spawn([AM_BINARY, f"--config.file={folder / 'alertmanager.yml'}",
                           f"--storage.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                           "--cluster.listen-address=", "--log.level=warn"], f"alertmanager-{port}.log")
        try:
            wait_http(f"http://127.0.0.1:{port}/-/ready", 30, proc)
            yield f"http://127.0.0.1:{port}", proc
        finally:
            stop(proc)
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


# -- load -------------------------------------------------------------------------------------------

Sender = Callable[[aiohttp.ClientSession, str, str], Awaitable[int]]
REQ, NAME, FP = "@@REQ@@", "Bench@@NAME@@", "@@FINGERPRINT@@"


def template(obj: Any) -> Callable[[str, str], bytes]:
    """Serialize once with placeholders; each request only substitutes its alert's req, name and fingerprint."""
    raw = json.dumps(obj).encode()

    def fill(req: str, name: str) -> bytes:
        fp = hashlib.sha256(req.encode()).hexdigest()[:16]
        return raw.replace(REQ.encode(), req.encode()).replace(NAME.encode(), name.encode()).replace(
            FP.encode(), fp.encode())

    return fill


def responder_sender(base: str, source: str) -> Sender:
    url = f"{base}/hooks/{source}"
    body = webhook_body(alert(REQ, NAME, datetime.now(UTC)), source)
    body["alerts"][0]["fingerprint"] = FP
    fill = template(body)

    async def send(session: aiohttp.ClientSession, req: str, name: str) -> int:
        data = fill(req, name)
        async with session.post(url, data=data, headers=webhook_headers(data, source)) as reply:
            await reply.read()
            return reply.status

    return send


def alertmanager_sender(base: str) -> Sender:
    url = f"{base}/api/v2/alerts"
    headers = {"Content-Type": "application/json", "User-Agent": "Prometheus/2.45.0"}
    fill = template([alert(REQ, NAME, datetime.now(UTC))])

    async def send(session: aiohttp.ClientSession, req: str, name: str) -> int:
        async with session.post(url, data=fill(req, name), headers=headers) as reply:
            await reply.read()
            return reply.status

    return send


@dataclass
class LoadResult:
    sent: dict[str, int] = field(default_factory=dict)  # req -> send time (monotonic ns), measured only
    latencies: list[int] = field(default_factory=list)  # ns, accepted requests
    errors: int = 0
    error_statuses: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    window_ns: int = 0
    warmup_requests: int = 0


async def run_load(send: Sender, *, prefix: str, names: int, rate: float | None, seconds: float, warmup: float,
                   clients: int, ok: int) -> LoadResult:
    """Open loop at `rate`/s, or closed loop with `clients` when rate is None; the first `warmup` s is not counted."""
    result = LoadResult()
    counter = 0
    connector = aiohttp.TCPConnector(limit=2048 if rate else clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t_start = time.monotonic_ns()
        t_measure = t_start + int(warmup * 1e9)
        t_end = t_measure + int(seconds * 1e9)

        async def one() -> None:
            nonlocal counter
            counter += 1
            req = f"{prefix}-{counter}"
            name = f"Bench{random.randrange(names):05d}"
            t0 = time.monotonic_ns()
            measured = t0 >= t_measure
            if measured:
                result.sent[req] = t0
            error = ""
            try:
                status = await send(session, req, name)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = 0
                error = exc.__class__.__name__
            t1 = time.monotonic_ns()
            if not measured:
                result.warmup_requests += 1
                return
            if status == ok:
                result.accepted += 1
                result.latencies.append(t1 - t0)
            else:
                result.errors += 1
                what = str(status) if status else error
                result.error_statuses[what] = result.error_statuses.get(what, 0) + 1

        if rate:
            interval = 1e9 / rate
            tasks = set()
            i = 0
            while True:
                due = t_start + int(i * interval)
                if due >= t_end:
                    break
                delay = (due - time.monotonic_ns()) / 1e9
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            await asyncio.gather(*tasks)
        else:
            async def client() -> None:
                while time.monotonic_ns() < t_end:
                    await one()

            await asyncio.gather(*(client() for _ in range(clients)))
        result.window_ns = t_end - t_measure
    return result


async def sink_records(sink: str, *, clear: bool = True) -> list[tuple[int, str, str]]:
    async with aiohttp.ClientSession() as session, \
            session.get(f"{sink}/_dump", params={"clear": "1"} if clear else {}) as reply:
        return [tuple(r) for r in (await reply.json())["records"]]  # type: ignore[misc]


async def wait_quiet(bench: Bench, pids: list[int], *, limit: float, most: float = 0.25) -> float:
    """Wait (up to `limit` s) until other processes use less than `most` of a core; returns their last share."""
    ours = sorted({*pids, *(p.pid for p in bench.procs)})
    deadline = time.monotonic() + limit
    while True:
        before = machine_busy_seconds() - cpu_seconds(ours) - time.process_time()
        await asyncio.sleep(1)
        foreign = machine_busy_seconds() - cpu_seconds(ours) - time.process_time() - before
        if foreign < most or time.monotonic() > deadline:
            return round(max(0.0, foreign), 2)


async def measure_load(bench: Bench, system: str, base: str, rate: float | None,
                       pids: list[int]) -> dict[str, Any]:
    args = bench.args
    await wait_quiet(bench, pids, limit=args.quiet)
    send = responder_sender(base, args.source) if system == "responder" else alertmanager_sender(base)
    await sink_records(bench.sink)  # empty it
    bench.redis_cli("CONFIG", "RESETSTAT")
    ours = sorted({*pids, *(p.pid for p in bench.procs)})  # the system, redis-server, the sink
    cpu_before = (cpu_seconds(pids), cpu_seconds([bench.redis_pid]), time.process_time(),
                  machine_busy_seconds() - cpu_seconds(ours) - time.process_time())
    load = await run_load(send, prefix=f"{system}-{rate or 'max'}-{random.randrange(1 << 30):x}", names=args.names,
                          rate=rate, seconds=args.seconds, warmup=args.warmup, clients=args.clients,
                          ok=202 if system == "responder" else 200)
    t_sent = time.monotonic_ns()
    # CPU over warm-up + window, per accepted request (the engine's backlog keeps working after it)
    cpu = [after - before for after, before in zip(
        (cpu_seconds(pids), cpu_seconds([bench.redis_pid]), time.process_time(),
         machine_busy_seconds() - cpu_seconds(ours) - time.process_time()), cpu_before, strict=True)]
    elapsed = load.window_ns / 1e9 + args.warmup
    requests = max(1, load.accepted + load.errors + load.warmup_requests)
    commands = sum(int(v["calls"]) for k, v in bench.redis_cli("INFO", "commandstats").items()
                   if k.startswith("cmdstat_") and isinstance(v, dict))
    total_sent = len(load.sent)
    records: list[tuple[int, str, str]] = []
    start = time.monotonic()
    while True:  # until every measured accepted alert reached the sink, or the drain timeout
        records += await sink_records(bench.sink)
        got = {r[2] for r in records if r[2] in load.sent}
        # below 2,000/s wait for the engine's backlog (the e2e figures need it); above, a shorter look is enough
        if len(got) >= load.accepted or time.monotonic() - start > (args.drain if rate and rate < 2000 else 10):
            break
        await asyncio.sleep(0.25)
    waited = time.monotonic() - start
    arrival: dict[str, int] = {}
    for t, _kind, req in records:
        if req in load.sent and req not in arrival:
            arrival[req] = t
    e2e = [arrival[r] - load.sent[r] for r in arrival]
    first_send = min(load.sent.values()) if load.sent else t_sent
    last_arrival = max(arrival.values()) if arrival else t_sent
    out = {
        "system": system, "rate": rate, "clients": None if rate else args.clients, "sent": total_sent,
        "accepted": load.accepted, "errors": load.errors, "error_statuses": load.error_statuses,
        "accepted_per_s": round(load.accepted / (load.window_ns / 1e9), 1),
        "p50_ms": ms(percentile(load.latencies, 50)), "p99_ms": ms(percentile(load.latencies, 99)),
        "delivered": len(arrival), "e2e_p50_ms": ms(percentile(e2e, 50)), "e2e_p99_ms": ms(percentile(e2e, 99)),
        "e2e_max_ms": ms(max(e2e) if e2e else None),
        "delivered_per_s": round(len(arrival) / ((last_arrival - first_send) / 1e9), 1) if arrival else 0.0,
        "drain_s": round(waited, 1),
        "cpu_ms_per_request": round(cpu[0] * 1000 / requests, 3),
        "redis_cpu_ms_per_request": round(cpu[1] * 1000 / requests, 3),
        "loadgen_cpu_ms_per_request": round(cpu[2] * 1000 / requests, 3),
        "cpu_cores_used": round(cpu[0] / elapsed, 2),
        # other processes on the machine (other users' jobs): a busy neighbour makes a run worthless
        "foreign_cpu_cores": round(max(0.0, cpu[3]) / elapsed, 2),
        "redis_commands_per_request": round(commands / requests, 1) if system == "responder" else None,
    }
    print(f"  {system:<12} {f'{rate:g}/s' if rate else 'max':>7}: {out['accepted_per_s']:>8}/s accepted, 202 p50 "
          f"{out['p50_ms']} p99 {out['p99_ms']} ms, errors {load.errors} {load.error_statuses or ''}; "
          f"delivered {len(arrival)}/{load.accepted} "
          f"e2e p50 {out['e2e_p50_ms']} p99 {out['e2e_p99_ms']} ms ({out['delivered_per_s']}/s); CPU/request "
          f"{out['cpu_ms_per_request']} ms (+redis {out['redis_cpu_ms_per_request']}, loadgen "
          f"{out['loadgen_cpu_ms_per_request']}), redis commands/request {out['redis_commands_per_request']}, "
          f"foreign CPU {out['foreign_cpu_cores']} cores",
          flush=True)
    return out


async def part_ab(bench: Bench) -> list[dict[str, Any]]:
    args = bench.args
    rows = []
    for rate in [*args.rates, *([None] if args.with_max else [])]:
        for system in ("alertmanager", "responder"):
            for attempt in (1, 2):  # once more if the system under test died under us
                starter = bench.responder(rules=args.names, workers=args.workers) if system == "responder" \
                    else bench.alertmanager()
                with starter as (base, proc):
                    row = await measure_load(bench, system, base, rate,
                                             family(proc.pid) if system == "responder" else [proc.pid])
                    died = proc.poll()
                    if died is not None:
                        log = sorted(bench.folder.glob(f"{system}-*.log"), key=lambda f: f.stat().st_mtime)[-1]
                        tail = log.read_text(errors="replace").splitlines()[-15:]
                        print(f"  !! {system} exited with {died} during the load; its log ends:", *tail, sep="\n    ",
                              flush=True)
                        row["exited_with"] = died
                if died is None or attempt == 2:
                    rows.append(row)
                    break
    return rows


# -- (c) rule evaluation, in process ------------------------------------------------------------------

async def part_c(bench: Bench) -> list[dict[str, Any]]:
    """Build one evaluator per rule count, then time them in turns (event i on each) so that a noisy
    neighbour slows all of them alike; the cost compared is the median."""
    from responder.clock import SystemClock
    from responder.config.loader import load_config
    from responder.events import Event, EventStatus, fingerprint
    from responder.logs import configure_logging
    from responder.metrics import Metrics
    from responder.services import Services
    from responder.store import redis as store_redis

    args = bench.args
    configure_logging("WARNING")  # as a daemon would log: one JSON line per incident opened is not measured here
    bench.redis_cli("FLUSHALL")
    now = datetime.now(UTC)

    def event(count: int, i: int) -> Event:
        name = f"Bench{random.randrange(count):05d}"
        labels = {"alertname": name, "req": f"c{count}-{i}", "service": "api", "severity": "critical"}
        return Event(source="alertmanager", name=name, service="api", status=EventStatus.FIRING, labels=labels,
                     fingerprint=fingerprint("alertmanager", name, labels), occurred_at=now, received_at=now,
                     delivery_id=f"alertmanager:c{count}-{i}")

    load_s: dict[int, float] = {}
    evaluators: dict[int, Any] = {}
    times: dict[int, list[int]] = {count: [] for count in args.rule_counts}
    match_us: dict[int, float | None] = {}
    async with contextlib.AsyncExitStack() as stack:
        for count in args.rule_counts:
            folder = bench.folder / f"rules-{count}"
            (folder / "rules").mkdir(parents=True)
            (folder / "responder.yaml").write_text("{}\n")
            (folder / "rules" / "bench.yaml").write_text(rules_yaml(count, "alertmanager", None))
            t = time.perf_counter()
            loaded = load_config(folder / "responder.yaml", env={})
            load_s[count] = time.perf_counter() - t
            redis = await stack.enter_async_context(store_redis.connect(bench.redis_url))
            http = await stack.enter_async_context(aiohttp.ClientSession())
            services = Services.build(loaded, redis, http, SystemClock(), Metrics(), consumer_name=f"bench-{count}")
            evaluators[count] = services.evaluator
            for i in range(args.rule_warmup):
                await services.evaluator.handle(event(count, -i - 1))
        for i in range(args.rule_events):
            for count, evaluator in evaluators.items():
                ev = event(count, i)
                t0 = time.perf_counter_ns()
                decisions = await evaluator.handle(ev)
                times[count].append(time.perf_counter_ns() - t0)
                assert len(decisions) == 1 and decisions[0].result == "fire", decisions
        for count, evaluator in evaluators.items():
            index = getattr(evaluator, "index", None)
            match_us[count] = None
            if index is not None and hasattr(index, "candidates"):
                sample = [event(count, -1) for _ in range(2000)]
                t0 = time.perf_counter_ns()
                for ev in sample:
                    index.candidates(ev)
                match_us[count] = round((time.perf_counter_ns() - t0) / len(sample) / 1e3, 2)
    rows = []
    for count in args.rule_counts:
        ts = times[count]
        row = {"rules": count, "events": len(ts), "load_config_s": round(load_s[count], 2),
               "mean_us": round(sum(ts) / len(ts) / 1e3, 1), "p50_us": round(percentile(ts, 50) / 1e3, 1),
               "p99_us": round(percentile(ts, 99) / 1e3, 1), "match_us": match_us[count]}
        print(f"  {count:>6} rules: handle() p50 {row['p50_us']} µs, mean {row['mean_us']}, p99 {row['p99_us']}; "
              f"index lookup {row['match_us']} µs; config load {row['load_config_s']} s", flush=True)
        rows.append(row)
    return rows


# -- (d) RSS ----------------------------------------------------------------------------------------

async def part_d(bench: Bench) -> dict[str, Any]:
    args = bench.args
    rules, probes, incidents = args.rss_rules, args.rss_probes, args.rss_incidents
    with bench.responder(rules=rules, probes=probes, name="rss") as (base, proc):
        await asyncio.sleep(2)
        started = proc_status(proc.pid)
        await sink_records(bench.sink)
        send = responder_sender(base, args.source)
        connector = aiohttp.TCPConnector(limit=32)
        async with aiohttp.ClientSession(connector=connector) as session:
            queue = list(range(incidents))

            async def client() -> None:
                while queue:
                    i = queue.pop()
                    status = await send(session, f"rss-{i}", f"Bench{i % rules:05d}")
                    assert status == 202, status

            await asyncio.gather(*(client() for _ in range(32)))
        start = time.monotonic()
        delivered: set[str] = set()
        while len(delivered) < incidents and time.monotonic() - start < 300:
            delivered |= {r[2] for r in await sink_records(bench.sink) if r[1] == "responder"}
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        open_incidents = int(bench.redis_cli("ZCARD", "responder:{inc}:state:triggered") or 0) + \
            int(bench.redis_cli("ZCARD", "responder:{inc}:state:mitigating") or 0)
        loaded = proc_status(proc.pid)
    row = {"rules": rules, "probes": probes, "incidents_sent": incidents, "playbook_runs_done": len(delivered),
           "open_incidents": open_incidents, "rss_started_mb": started.get("VmRSS"),
           "rss_mb": loaded.get("VmRSS"), "hwm_mb": loaded.get("VmHWM")}
    print(f"  RSS at start {row['rss_started_mb']} MB; with {incidents} incidents {row['rss_mb']} MB "
          f"(peak {row['hwm_mb']} MB); open incidents {open_incidents}, runs done {len(delivered)}", flush=True)
    return row


# -- report -----------------------------------------------------------------------------------------

def targets(ab: list[dict[str, Any]], c: list[dict[str, Any]], d: dict[str, Any] | None,
            e2e_rate: float) -> list[dict[str, Any]]:
    out = []

    def row(system: str, rate: float | None) -> dict[str, Any] | None:
        return next((r for r in ab if r["system"] == system and r["rate"] == rate), None)

    def neighbours(*rows: dict[str, Any]) -> float:
        return max(r.get("foreign_cpu_cores", 0.0) for r in rows)

    r_max, a_max = row("responder", None), row("alertmanager", None)
    if r_max and a_max and a_max["accepted_per_s"]:
        ratio = r_max["accepted_per_s"] / a_max["accepted_per_s"]
        out.append({"target": "durable ingest ≥ 1.5x Alertmanager's accepted alerts/s",
                    "responder": f"{r_max['accepted_per_s']:.0f}/s", "alertmanager": f"{a_max['accepted_per_s']:.0f}/s",
                    "ratio": round(ratio, 2), "met": ratio >= 1.5, "neighbours": neighbours(r_max, a_max)})
    r_e, a_e = row("responder", e2e_rate), row("alertmanager", e2e_rate)
    if r_e and a_e and r_e["e2e_p99_ms"] is not None and a_e["e2e_p99_ms"]:
        ratio = r_e["e2e_p99_ms"] / a_e["e2e_p99_ms"]
        complete = r_e["delivered"] == r_e["accepted"]
        out.append({"target": f"webhook-in → first action p99 at {e2e_rate:g}/s ≤ Alertmanager's alert → webhook p99",
                    "responder": f"{r_e['e2e_p99_ms']} ms", "alertmanager": f"{a_e['e2e_p99_ms']} ms",
                    "ratio": round(ratio, 2), "met": ratio <= 1.0 and complete, "neighbours": neighbours(r_e, a_e)})
    if len(c) >= 2:
        low, high = c[0], c[-1]
        ratio = high["p50_us"] / low["p50_us"]
        out.append({"target": f"rule cost at {high['rules']:,} rules ≤ 2x the cost at {low['rules']:,} (median of "
                              "handle())",
                    "responder": f"{high['p50_us']} µs vs {low['p50_us']} µs", "alertmanager": "",
                    "ratio": round(ratio, 2), "met": ratio <= 2.0})
    if d:
        out.append({"target": f"RSS ≤ 150 MB with {d['rules']:,} rules, {d['probes']:,} probes, "
                              f"{d['incidents_sent']:,} open incidents",
                    "responder": f"{d['rss_mb']} MB", "alertmanager": "", "ratio": None,
                    "met": d["rss_mb"] is not None and d["rss_mb"] <= 150})
    return out


#: other processes' CPU (cores) above which a side-by-side ratio is not trusted
NOISY = 0.3


def verdict_note(goal: dict[str, Any]) -> str:
    busy = goal.get("neighbours", 0.0)
    if busy > NOISY:
        return f" (not comparable: other processes used up to {busy} cores meanwhile; run again when quiet)"
    return ""


def fmt(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def write(args: argparse.Namespace, meta: dict[str, Any], ab: list[dict[str, Any]], c: list[dict[str, Any]],
          d: dict[str, Any] | None) -> None:
    goals = targets(ab, c, d, 500.0 if 500.0 in args.rates or not args.rates else args.rates[-1])
    data = {"meta": meta, "targets": goals, "ingest_and_e2e": ab, "rules": c, "rss": d}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        "# Pipeline benchmark: responder side by side with Prometheus Alertmanager", "",
        f"`{meta['command']}` — run {meta['date']} on {meta['machine']}; Python {meta['python']}, "
        f"redis-server {meta['redis']}, Alertmanager {meta['alertmanager']}, aiohttp {meta['aiohttp']}, "
        f"redis-py {meta['redis_py']}, event loop in responder: {meta['loop']}, responder workers: {meta['workers']}.",
        "", "Every process shares the same machine (load generator, sink, redis-server, the system under test); "
        "each load runs against a freshly started system on an empty store. Alerts are unique (label `req`), "
        f"{meta['names']} alert names, {meta['source']} webhooks signed as configured; Alertmanager receives the same "
        f"alert at /api/v2/alerts. Fixed rates are open loop; `max` is {meta['clients']} closed-loop clients. "
        f"Window {meta['seconds']} s after {meta['warmup']} s warm-up.", "",
        "## Targets", "", "| target | responder | Alertmanager | ratio | result |", "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {g['target']} | {fmt(g['responder'])} | {fmt(g['alertmanager'])} | {fmt(g['ratio'])} | "
              f"{'**met**' if g['met'] else '**missed**'}{verdict_note(g)} |" for g in goals]
    lines += ["", "## (a) durable ingest: accepted requests/s and latency of the 202 (Alertmanager: 200)", "",
              "| load | system | accepted/s | p50 ms | p99 ms | errors | responder/AM accepted/s | server CPU ms/req "
              "| redis CPU ms/req | load generator CPU ms/req | Redis commands/req | other processes' CPU (cores) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for rate in [*args.rates, None]:
        pair = {r["system"]: r for r in ab if r["rate"] == rate}
        ratio = None
        if "responder" in pair and "alertmanager" in pair and pair["alertmanager"]["accepted_per_s"]:
            ratio = round(pair["responder"]["accepted_per_s"] / pair["alertmanager"]["accepted_per_s"], 2)
        for system in ("responder", "alertmanager"):
            r = pair.get(system)
            if r:
                label = f"{rate:g}/s" if rate else f"max ({r['clients']} clients)"
                lines.append(f"| {label} | {system} | {r['accepted_per_s']} | {fmt(r['p50_ms'])} | "
                             f"{fmt(r['p99_ms'])} | {r['errors']} | {fmt(ratio) if system == 'responder' else ''} | "
                             f"{r['cpu_ms_per_request']} | "
                             f"{r['redis_cpu_ms_per_request'] if system == 'responder' else ''} | "
                             f"{r['loadgen_cpu_ms_per_request']} | {fmt(r['redis_commands_per_request'])} | "
                             f"{r['foreign_cpu_cores']} |")
    lines += ["", "## (b) end to end: webhook in → first playbook `http.request` at the sink "
              "(Alertmanager: alert in → webhook notification at the sink)", "",
              "| load | system | delivered | p50 ms | p99 ms | max ms | delivered/s | p99 responder/AM |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for rate in [*args.rates, None]:
        pair = {r["system"]: r for r in ab if r["rate"] == rate}
        ratio = None
        if "responder" in pair and "alertmanager" in pair and pair["alertmanager"]["e2e_p99_ms"] \
                and pair["responder"]["e2e_p99_ms"] is not None:
            ratio = round(pair["responder"]["e2e_p99_ms"] / pair["alertmanager"]["e2e_p99_ms"], 2)
        for system in ("responder", "alertmanager"):
            r = pair.get(system)
            if r:
                label = f"{rate:g}/s" if rate else f"max ({r['clients']} clients)"
                lines.append(f"| {label} | {system} | {r['delivered']}/{r['accepted']} | {fmt(r['e2e_p50_ms'])} | "
                             f"{fmt(r['e2e_p99_ms'])} | {fmt(r['e2e_max_ms'])} | {r['delivered_per_s']} | "
                             f"{fmt(ratio) if system == 'responder' else ''} |")
    lines += ["", "CPU is measured over warm-up and window, per request sent then: the system's own processes "
              "(responder's workers; Alertmanager), redis-server, and this load generator; the engine's backlog keeps "
              "working after the window, so at loads above what the engine sustains the server's figure undercounts. "
              "The last column is CPU used by other processes on the machine meanwhile: a run with a busy neighbour "
              "is not comparable. "
              "At 2,000/s and at the maximum the (b) rows show how fast each pipeline drained what was accepted "
              "(delivered/s, from the first request to the last delivery).", ""]
    if c:
        lines += ["## (c) rule evaluation: `Evaluator.handle(event)` for unique firing events matching one rule "
                  "(each opens an incident), on the bench redis-server, the rule counts timed in turns", "",
                  "| rules | events | p50 µs | mean µs | p99 µs | index lookup µs | config load s |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['rules']:,} | {r['events']} | {r['p50_us']} | {r['mean_us']} | {r['p99_us']} | "
                  f"{fmt(r['match_us'])} | {r['load_config_s']} |" for r in c]
        lines.append("")
    if d:
        lines += ["## (d) memory of one responder process", "",
                  "| rules | probes | incidents sent | open incidents | playbook runs done | RSS at start MB | "
                  "RSS MB | peak (VmHWM) MB |", "| --- | --- | --- | --- | --- | --- | --- | --- |",
                  f"| {d['rules']:,} | {d['probes']:,} | {d['incidents_sent']:,} | {d['open_incidents']:,} | "
                  f"{d['playbook_runs_done']:,} | {d['rss_started_mb']} | {d['rss_mb']} | {d['hwm_mb']} |", ""]
    if args.notes and Path(args.notes).is_file():
        lines += [Path(args.notes).read_text().rstrip(), ""]
    (RESULTS / f"{args.output}.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / args.output}.md and .json")


def metadata(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    import redis

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python3 tests/bench/bench_pipeline.py" + ("" if not argv else " " + " ".join(argv)),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()})",
        "python": platform.python_version(),
        "redis": version_of(["redis-server", "--version"],
                            lambda s: next(p.split("=")[1] for p in s.split() if p.startswith("v="))),
        "alertmanager": version_of([AM_BINARY, "--version"], lambda s: s.split()[2].rstrip(",")),
        "aiohttp": aiohttp.__version__, "redis_py": redis.__version__, "loop": loop, "workers": args.workers,
        "names": args.names, "source": args.source, "clients": args.clients, "seconds": args.seconds,
        "warmup": args.warmup,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short windows and fewer events (about 2 minutes)")
    parser.add_argument("--parts", default="a,b,c,d", help="which parts to run (a and b run together)")
    parser.add_argument("--workers", type=int, default=1, help="responder run --workers N")
    parser.add_argument("--clients", type=int, default=32, help="closed-loop clients for the maximum")
    parser.add_argument("--source", choices=("alertmanager", "grafana"), default="alertmanager")
    parser.add_argument("--names", type=int, default=10, help="alert names = rules in (a)/(b)")
    parser.add_argument("--seconds", type=float, help="measured window per load (default 10, quick 4)")
    parser.add_argument("--loads", default="100,500,2000,max", help="the fixed rates of (a)/(b), and max")
    parser.add_argument("--output", default="pipeline", help="results file name (without .md/.json)")
    parser.add_argument("--quiet", type=float, default=60,
                        help="before each load, wait up to this many seconds for other processes to go quiet")
    parser.add_argument("--notes", default=str(RESULTS / "pipeline-notes.md"),
                        help="a markdown file appended to pipeline.md (what the profile showed)")
    parser.add_argument("--serve-sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    loads = [x.strip() for x in args.loads.split(",") if x.strip()]
    args.rates = [float(x) for x in loads if x != "max"]
    args.with_max = "max" in loads
    args.seconds = args.seconds or (4.0 if args.quick else 8.0)
    args.warmup = 1.0 if args.quick else 2.0
    args.drain = 20.0 if args.quick else 30.0
    args.rule_counts = [10, 1000, 10000]
    args.rule_events = 300 if args.quick else 2000
    args.rule_warmup = 50 if args.quick else 200
    args.rss_rules, args.rss_probes, args.rss_incidents = 10_000, 1_000, 10_000
    return args


async def amain(args: argparse.Namespace, argv: list[str]) -> int:
    parts = set(args.parts.split(","))
    folder = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    bench = Bench(args, folder)
    ab: list[dict[str, Any]] = []
    c: list[dict[str, Any]] = []
    d = None
    print(f"logs in {folder}", flush=True)
    try:
        bench.start_base()
        if parts & {"a", "b"}:
            print("(a)+(b) ingest and end to end", flush=True)
            ab = await part_ab(bench)
        if "c" in parts:
            print("(c) rule evaluation", flush=True)
            c = await part_c(bench)
        if "d" in parts:
            print("(d) RSS", flush=True)
            d = await part_d(bench)
    finally:
        bench.close()
    write(args, metadata(args, argv), ab, c, d)
    if not os.environ.get("BENCH_KEEP_LOGS"):
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def main() -> int:
    argv = sys.argv[1:]
    args = parse_args(argv)
    if args.serve_sink:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
        serve_sink(args.serve_sink)
        return 0
    if shutil.which(AM_BINARY) is None and set(args.parts.split(",")) & {"a", "b"}:
        raise SystemExit(f"{AM_BINARY} is not installed: apt-get install -y prometheus-alertmanager")
    try:
        import uvloop

        return uvloop.run(amain(args, argv))
    except ImportError:
        return asyncio.run(amain(args, argv))


if __name__ == "__main__":
    raise SystemExit(main())
