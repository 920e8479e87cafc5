"""`responder run --workers N`: N processes on one port (SO_REUSEPORT), sharing the work through Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from responder.cli import main
from tests.conftest import PAYLOADS, free_port, write_config

ROOT = Path(__file__).resolve().parents[1]

RULES = """
rules:
  - id: api-error-rate
    match: {source: sentry, name: {regex: "(?i).*error rate.*"}}
    when: {value: "> 0.05"}
    group_by: [service]
"""


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_workers_need_redis_and_a_fixed_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, {"responder.yaml": "server: {port: 18080}\n"})
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["run", "--config", str(config), "--workers", "2"]) == 2
    assert "--workers needs REDIS_URL" in capsys.readouterr().err
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["run", "--config", str(config), "--workers", "2", "--port", "0"]) == 2
    assert "--workers needs a fixed --port" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--config", str(config), "--workers", "0"])


async def test_two_workers_share_the_port_and_the_work(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    config = write_config(tmp_path, {"responder.yaml": f"server: {{port: {port}}}\n", "rules/r.yaml": RULES})
    log = (tmp_path / "daemon.log").open("w")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "responder", "run", "--config", str(config),
                                                "--workers", "2", cwd=str(tmp_path), env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    body = (PAYLOADS / "sentry" / "metric_alert_error_rate_critical.json").read_bytes()
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(150):
                try:
                    async with http.get(f"{base}/readyz") as reply:
                        if reply.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            assert len(await asyncio.to_thread(children, proc.pid)) == 2
            headers = {"Content-Type": "application/json", "Sentry-Hook-Resource": "metric_alert"}
            async with http.post(f"{base}/hooks/sentry", data=body, headers=headers) as reply:
                assert reply.status == 202
            for _ in range(100):  # one of the workers' engines opens the incident
                async with http.get(f"{base}/api/v1/incidents") as reply:
                    incidents = (await reply.json())["incidents"]
                if incidents:
                    break
                await asyncio.sleep(0.1)
            assert len(incidents) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
        log.close()
    assert code == 0, (tmp_path / "daemon.log").read_text()[-2000:]
    assert (tmp_path / "daemon.log").read_text().count("responder started") == 2


async def test_workers_stop_when_the_parent_is_killed(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    config = write_config(tmp_path, {"responder.yaml": f"server: {{port: {port}}}\n"})
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "responder", "run", "--config", str(config),
                                                "--workers", "2", cwd=str(tmp_path), env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    workers: list[int] = []
    for _ in range(150):
        workers = await asyncio.to_thread(children, proc.pid)
        if len(workers) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(workers) == 2
    proc.kill()  # SIGKILL: the parent cannot forward anything
    await proc.wait()
    for _ in range(150):
        alive = [await asyncio.to_thread(_alive, pid) for pid in workers]
        if not any(alive):
            break
        await asyncio.sleep(0.1)
    else:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        raise AssertionError("workers outlived their parent")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0]
    except (OSError, IndexError):
        return False
    return "zombie" not in state.lower()
