"""`responder run` schedules the probes, and SIGHUP re-reads the probe files without a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port, write_config
from tests.probes.conftest import HealthServer

ROOT = Path(__file__).resolve().parents[2]


def probe(probe_id: str, url: str) -> str:
    return f"  - id: {probe_id}\n    http: {{url: \"{url}\"}}\n    every: 500ms\n"


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_sighup_reloads_probe_files(tmp_path: Path, redis_url: str, health: HealthServer) -> None:
    port = free_port()
    config = write_config(tmp_path, {"responder.yaml": f"server: {{port: {port}}}\n",
                                     "probes/p.yaml": "probes:\n" + probe("first", health.url)})
    log = (tmp_path / "daemon.log").open("w")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "responder", "run", "--config", str(config),
                                                cwd=str(tmp_path), env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/api/v1/probes"
    try:
        async with aiohttp.ClientSession() as http:
            async def probes() -> dict[str, Any]:
                try:
                    async with http.get(url) as response:
                        return {p["id"]: p for p in (await response.json())["probes"]}
                except aiohttp.ClientError:
                    return {}

            async def has(*ids: str) -> bool:
                return sorted(await probes()) == sorted(ids)

            await eventually(lambda: has("first"))
            await eventually(lambda: _ran(probes, "first"))  # the daemon's scheduler runs it

            (tmp_path / "probes" / "p.yaml").write_text("probes:\n" + probe("second", health.url))
            proc.send_signal(signal.SIGHUP)
            await eventually(lambda: has("second"))
            await eventually(lambda: _ran(probes, "second"))

            (tmp_path / "probes" / "p.yaml").write_text("probes:\n  - id: broken\n    every: soon\n")
            proc.send_signal(signal.SIGHUP)
            await eventually(lambda: _logged(tmp_path / "daemon.log", "probe reload refused"))
            assert await has("second")  # the running probes stay
            assert proc.returncode is None
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
        log.close()
    assert "probes reloaded" in (tmp_path / "daemon.log").read_text()


async def _ran(probes: Callable[[], Awaitable[dict[str, Any]]], probe_id: str) -> bool:
    found = (await probes()).get(probe_id)
    return bool(found and found["last"] and found["last"]["status"] == "ok")


async def _logged(path: Path, text: str) -> bool:
    return text in await asyncio.to_thread(path.read_text)
