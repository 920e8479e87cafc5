"""Chaos benchmark, run by hand: 100 trials of SIGKILL mid-playbook across 3 `responder run` replicas.

    python3 tests/bench/chaos.py [--trials 100] [--groups 4] [--hold 1.0] [--lease 1s]

The harness is the suite's (tests/reliability/chaos.py, which describes a trial): groups of 3
`python3 -m responder run` processes on one redis-server started here, each group with its own key
prefix, running trials one after the other (the groups side by side). Kill modes rotate: in flight at
once, in flight after a random part of the held call, and right after the fake answered the slow call.
Results go to tests/bench/results/chaos.md. pytest never collects this file (tests/bench/conftest.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import redis as sync_redis  # noqa: E402

from tests.conftest import free_port  # noqa: E402
from tests.reliability.chaos import STEPS, Trial, percentile, run_trials  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "chaos.md"


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = sync_redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except sync_redis.ConnectionError:
            time.sleep(0.05)
    version = str(client.info("server")["redis_version"])
    client.close()
    return proc, port, version


def fmt(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.2f} s"


def write(args: argparse.Namespace, trials: list[Trial], wall: float, redis_version: str) -> str:
    takeovers = [t.takeover_s for t in trials if t.takeover_s is not None]
    next_steps = [t.next_step_s for t in trials if t.next_step_s is not None]
    completed = sum(t.completed for t in trials)
    duplicates = sum(t.duplicates for t in trials)
    missing = sum(1 for t in trials for s in STEPS if t.counts.get(s, 0) == 0)
    by_mode: dict[str, Counter[str]] = {}
    for t in trials:
        where = "survivor" if t.after_by_survivor else "victim"
        by_mode.setdefault(t.mode, Counter())[f"slow {t.slow_status}, after on the {where}"] += 1
    lines = [
        "# Chaos: SIGKILL of the replica running a slow side-effecting step",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · `python3 tests/bench/chaos.py --trials {args.trials} "
        f"--groups {args.groups} --hold {args.hold} --lease {args.lease}` · Python {platform.python_version()} · "
        f"redis-server {redis_version} · {os.cpu_count()} CPUs · wall time {wall:.0f} s",
        "",
        f"Each trial: 3 `responder run` processes (engine.run_lease {args.lease}, claim_idle {args.lease}, "
        f"tick 100ms); one webhook; playbook fast → slow (the fake holds it {args.hold} s) → after; the process "
        "whose id is in the slow step's record is killed with SIGKILL; a replacement is started. The fake counts "
        "every request per step and trial.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| trials | {len(trials)} |",
        f"| runs completed on another replica | {completed} |",
        f"| duplicate step calls (a step's request seen more than once) | {duplicates} |",
        f"| missing step calls | {missing} |",
        f"| trials with an error | {sum(t.error is not None for t in trials)} |",
        f"| takeover (kill → a survivor owns the run) p50 / p99 / max | {fmt(percentile(takeovers, 0.5))} / "
        f"{fmt(percentile(takeovers, 0.99))} / {fmt(max(takeovers) if takeovers else None)} |",
        f"| kill → next step's request at the fake p50 / p99 | {fmt(percentile(next_steps, 0.5))} / "
        f"{fmt(percentile(next_steps, 0.99))} |",
        "",
        "Outcome of the slow step per kill mode (\"interrupted\": the call was cut off, or answered but the "
        "replica died before recording it; it is never called again — the documented at-most-once window):",
        "",
        "| kill mode | trials | outcome |",
        "| --- | --- | --- |",
    ]
    for mode, outcomes in sorted(by_mode.items()):
        detail = "; ".join(f"{name}: {n}" for name, n in sorted(outcomes.items()))
        lines.append(f"| {mode} | {sum(outcomes.values())} | {detail} |")
    errors = [t for t in trials if t.error or not t.ok]
    if errors:
        lines += ["", "Trials that did not meet the assertions:", ""]
        lines += [f"- {t.name} ({t.mode}): counts {t.counts}, run {t.run_status}, slow {t.slow_status}, "
                  f"error {t.error}" for t in errors]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--hold", type=float, default=1.0, help="seconds the fake holds the slow call")
    parser.add_argument("--lease", default="1s", help="engine.run_lease and engine.claim_idle")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (apt-get install -y redis-server)", file=sys.stderr)
        return 2
    rng = random.Random(6)
    delays = tuple(0.0 if i % 2 == 0 else round(rng.uniform(0.05, 0.8) * args.hold, 3) for i in range(args.trials))
    modes = tuple("after-response" if i % 4 == 3 else "in-flight" for i in range(args.trials))
    with tempfile.TemporaryDirectory() as folder:
        proc, port, version = start_redis(Path(folder))
        try:
            started = time.monotonic()
            trials = asyncio.run(run_trials(Path(folder), f"redis://127.0.0.1:{port}/0", trials=args.trials,
                                            groups=args.groups, hold=args.hold, modes=modes, lease=args.lease,
                                            kill_delays=delays))
            wall = time.monotonic() - started
        finally:
            proc.terminate()
            proc.wait(10)
    print(write(args, trials, wall, version))
    return 0 if all(t.ok for t in trials) else 1


if __name__ == "__main__":
    sys.exit(main())
