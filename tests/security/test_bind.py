"""Nothing listens beyond the configured address: `responder run` opens one listening socket, on server.host and
server.port, and nothing else (checked in /proc, and by connecting to another loopback address)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, write_config

ROOT = Path(__file__).resolve().parents[2]
LISTEN = "0A"


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket the process holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN or fields[9] not in inodes:
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # /proc prints the address as host-order 32-bit words
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            out.add((socket.inet_ntop(family, packed), int(port, 16)))
    return out


def refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except OSError:
        return True


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    """`responder run` in embedded mode on 127.0.0.2 (a loopback address other than the default)."""
    host, port = "127.0.0.2", free_port()
    config = write_config(tmp_path, {"responder.yaml": f"server: {{host: '{host}', port: {port}}}\n"})
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "responder", "run", "--config", str(config)], cwd=tmp_path,
                            env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=2) as reply:
                    assert reply.status == 200
                    break
            except OSError:
                assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
                assert time.monotonic() < deadline, "the daemon did not answer /healthz"
                time.sleep(0.1)
        yield host, port, proc
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_only_the_configured_address_listens(daemon: tuple[str, int, subprocess.Popen[bytes]]) -> None:
    host, port, proc = daemon
    assert listening(proc.pid) == {(host, port)}
    assert refused("127.0.0.1", port)  # bound to 127.0.0.2 only: not every address, not the default
    assert refused("127.0.0.3", port)


def test_the_default_host_is_loopback() -> None:
    from responder.config.model import ServerConfig

    assert ServerConfig().host == "127.0.0.1"
