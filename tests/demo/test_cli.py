"""`python3 -m responder demo --exit` as a user runs it: the shipped timing, a subprocess, exit code 0 and the
summary on stdout. Takes about 30 s (Sentry's compressed 10 s window has to clear twice)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(150)
def test_demo_exit_runs_both_variants_and_prints_the_summary(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SENTRY_DSN", "RESPONDER_CONFIG")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "responder", "demo", "--exit", "--port", "0"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=140)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]
    assert "Summary (times from the deploy)" in out
    assert "Variant 1 — a bad deploy (v2), rolled back: as expected" in out
    assert "Variant 2 — the database is down: the rollback does not help: as expected" in out
    assert re.search(r"bad deploy -> detection \d+\.\ds -> rollback \d+\.\ds -> verified recovery \d+\.\ds "
                     r"-> resolved \d+\.\ds", out)
    assert re.search(r"deploy -> detection \d+\.\ds -> rollback \d+\.\ds -> verification failed \d+\.\ds "
                     r"-> on-call paged \d+\.\ds", out)
    assert "rollback refused by the budget" in out
    assert "Both variants behaved as expected" in out and "✗" not in out
    took = re.search(r"as expected \((\d+)s in all\)", out)
    assert took and int(took.group(1)) < 60
    assert "Traceback" not in done.stderr
