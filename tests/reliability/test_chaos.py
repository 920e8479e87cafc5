"""Chaos: 3 `responder run` processes, SIGKILL of the one running a slow side-effecting step, 20 trials.

tests/bench/chaos.py runs the same harness (tests/reliability/chaos.py) for 100 trials and writes the figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.chaos import STEPS, percentile, run_trials

TRIALS = 20


@pytest.mark.timeout(240)
async def test_a_killed_replicas_run_completes_elsewhere_and_each_step_is_called_once(tmp_path: Path,
                                                                                      redis_url: str) -> None:
    # 4 groups of 3 replicas side by side, 5 trials each; every 4th trial kills right after the slow
    # call was answered (the window between the vendor's answer and the step record), the others mid-call
    trials = await run_trials(tmp_path, redis_url, trials=TRIALS, groups=4,
                              modes=("in-flight", "in-flight", "in-flight", "after-response"))
    assert len(trials) == TRIALS
    report = "\n".join(f"{t.name} {t.mode}: counts={t.counts} run={t.run_status} slow={t.slow_status} "
                       f"takeover={t.takeover_s} error={t.error}" for t in trials if not t.ok)
    assert all(t.ok for t in trials), report
    for t in trials:
        assert t.counts == {step: 1 for step in STEPS}, "each step's request reached the fake exactly once"
        assert t.completed and t.survivor != t.victim, "the run completed on another replica"
        if t.mode == "in-flight":
            # the killed call is recorded interrupted, never repeated; the next step ran once, on the survivor
            assert t.slow_status == "interrupted" and t.after_by_survivor
        else:
            assert t.slow_status in ("ok", "interrupted")
    takeovers = [t.takeover_s for t in trials if t.takeover_s is not None]
    assert len(takeovers) >= TRIALS - 5
    # engine.run_lease is 1s, renewed every third: a dead replica's run is claimed within about a lease + a tick
    assert percentile(takeovers, 0.5) < 2.5, takeovers
    print(f"chaos: {TRIALS} trials, takeover p50 {percentile(takeovers, 0.5):.2f}s "
          f"max {max(takeovers):.2f}s")
