"""Benchmark, run by hand: 1,000 HTTP probes every 10 s on one replica, against a local aiohttp server.

    python3 tests/bench/bench_probes.py [--probes 1000] [--every 10] [--seconds 60] [--warmup 12]

It starts a real redis-server and the target /health server in their own processes, then the whole
responder app in this one (scheduler, claims, checks, result store, event stream and the engine
consuming the events), exactly as `responder run` would. After a warm-up it measures for `--seconds`:

- tick lateness: when a tick started (the `at` of each stored result) minus when its slot was due
  (slot * interval + phase); this is scheduler and event-loop delay, before the claim;
- check latency: the HTTP round trip as the probe measured it;
- CPU: this process's CPU time over the window / wall time (100% = one core).

Results go to tests/bench/results/probes.md. pytest never collects this file (tests/bench/conftest.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from responder.app import create_app  # noqa: E402
from responder.config.loader import load_config  # noqa: E402
from responder.keys import SERVICES  # noqa: E402
from responder.logs import configure_logging  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "probes.md"

SERVER = """
import sys
from aiohttp import web
BODY = {"status": "healthy", "checks": {"database": "healthy", "redis": "healthy", "stripe": "healthy",
        "hostaway": "healthy"}, "uptime": 3600, "version": "1.2.3"}
async def health(request):
    return web.json_response(BODY)
app = web.Application()
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def probes_yaml(count: int, every: float, url: str) -> str:
    lines = ["probes:"]
    for i in range(count):
        lines += [f"  - id: bench-{i:04d}",
                  f"    http: {{url: \"{url}\", expect: {{status: 200, json: {{checks.database: healthy}}}}}}",
                  f"    every: {every:g}s", f"    timeout: {min(5.0, every):g}s", "    service: bench"]
    return "\n".join(lines) + "\n"


async def measure(args: argparse.Namespace, redis_url: str, target: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        (base / "probes").mkdir()
        (base / "responder.yaml").write_text("log_level: WARNING\n")
        (base / "probes" / "bench.yaml").write_text(probes_yaml(args.probes, args.every, target))
        loaded = load_config(base / "responder.yaml", env={})
    configure_logging(loaded.config.log_level, stream=sys.stderr)  # JSON lines, warnings and up, as in production
    app = create_app(loaded, env={"REDIS_URL": redis_url}, background=True, consumer_name="bench")
    runner = web.AppRunner(app)
    await runner.setup()  # runs the cleanup contexts' startup halves: Redis, services, consumer, probe scheduler
    services = app[SERVICES]
    try:
        await asyncio.sleep(args.warmup)
        cpu0, wall0 = time.process_time(), time.monotonic()
        window_start = datetime.now(UTC)
        await asyncio.sleep(args.seconds)
        cpu1, wall1 = time.process_time(), time.monotonic()
        load = os.getloadavg()[0]  # other work on the machine skews every number: it is recorded
        window_end = datetime.now(UTC)
        ids = list(services.probes.definitions)
        histories = await services.probes.history(ids, services.probes.settings.keep_results)
        backlog = await services.events.length()
    finally:
        started = time.monotonic()
        try:
            await asyncio.wait_for(runner.cleanup(), 30)
            shutdown = f"{time.monotonic() - started:.1f} s"
        except TimeoutError:
            shutdown = "over 30 s (abandoned; see the note below)"
    lateness, latency, failing = [], [], 0
    for probe_id, history in histories.items():
        probe = loaded.probes[probe_id]
        for result in history.results:
            at = datetime.fromisoformat(result["at"])
            if not window_start <= at < window_end:
                continue
            due_ms = result["slot"] * probe.interval_ms + probe.phase_ms
            lateness.append(at.timestamp() * 1000 - due_ms)
            if result["latency_ms"] is not None:
                latency.append(result["latency_ms"])
            failing += result["status"] != "ok"
    expected = args.probes * args.seconds / args.every
    return {"runs": len(lateness), "expected": expected, "failing": failing,
            "lateness_p50": percentile(lateness, 50), "lateness_p99": percentile(lateness, 99),
            "lateness_max": max(lateness, default=float("nan")),
            "latency_p50": percentile(latency, 50), "latency_p99": percentile(latency, 99),
            "cpu_percent": 100 * (cpu1 - cpu0) / (wall1 - wall0), "window": wall1 - wall0,
            "stream_length": backlog, "mean_lateness": statistics.fmean(lateness) if lateness else float("nan"),
            "shutdown": shutdown, "load_1m": load}


def write(args: argparse.Namespace, numbers: dict[str, Any], redis_version: str) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    n = numbers
    RESULTS.write_text(f"""# Probe scheduling benchmark

`python3 tests/bench/bench_probes.py --probes {args.probes} --every {args.every:g} --seconds {args.seconds:g}`
(run by hand; not part of CI). One replica: the whole responder app in one process (APScheduler jobs,
per-slot claims, HTTP checks, result store, event stream and the engine consuming the events), a real
redis-server ({redis_version}) and the target aiohttp /health server each in their own process.

Run {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")} on {platform.system()} {platform.machine()},
{os.cpu_count()} CPUs, Python {platform.python_version()}; measured over {n["window"]:.1f} s after a
{args.warmup:g} s warm-up.

| measure | value |
| --- | --- |
| probes x interval | {args.probes} x {args.every:g} s ({args.probes / args.every:g} checks/s) |
| runs in the window | {n["runs"]} (expected {n["expected"]:.0f}) |
| failing results | {n["failing"]} |
| tick lateness p50 | {n["lateness_p50"]:.1f} ms |
| tick lateness p99 | {n["lateness_p99"]:.1f} ms |
| tick lateness max | {n["lateness_max"]:.1f} ms |
| check latency p50 / p99 | {n["latency_p50"]:.1f} / {n["latency_p99"]:.1f} ms |
| process CPU | {n["cpu_percent"]:.1f} % of one core |
| events in the stream at the end (XLEN, consumed ones included) | {n["stream_length"]} |
| app shutdown after the run | {n["shutdown"]} |
| machine load average (1 min) at the end | {n["load_1m"]:.2f} |

Tick lateness is the start of a tick (the stored result's `at`, taken before the claim) minus the
moment its slot was due (`slot * interval + phase`). Check latency is the probe's own HTTP round trip
(a new connection per check). CPU is this process's CPU time over the window divided by wall time.
Other work on the machine (load average above) inflates lateness and latency.

Shutdown: under this load the app's cleanup can stall for about 30 s or more: the engine consumer's
task (`EngineConsumer.run`) loses its cancellation somewhere below `poll()` and keeps polling while
"cancelling". A check of `asyncio.current_task().cancelling()` at the top of its loop ends it at once
(shutdown then takes under 0.1 s). The probe scheduler itself stops in well under a second.
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--every", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=12)
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not installed", file=sys.stderr)
        return 1
    redis_port, server_port = free_port(), free_port()
    redis = subprocess.Popen([binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(server_port)])
    try:
        wait_port(redis_port)
        wait_port(server_port)
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
        redis_version = next((p.split("=")[1] for p in version.split() if p.startswith("v=")), "?")
        numbers = asyncio.run(measure(args, f"redis://127.0.0.1:{redis_port}/0",
                                      f"http://127.0.0.1:{server_port}/health"))
    finally:
        server.terminate()
        redis.terminate()
        server.wait(10)
        redis.wait(10)
    write(args, numbers, redis_version)
    print(json.dumps(numbers, indent=2))
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
