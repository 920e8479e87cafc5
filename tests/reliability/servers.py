"""Local Redis topologies for the reliability tests: a plain server, a 3-master Cluster, Sentinel.

Everything runs Debian's redis-server (and redis-cli for `--cluster create`) on 127.0.0.1, each in the
foreground under the test's control (killed by pid), with its files in a temporary folder.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis as sync_redis

BINARIES = ("redis-server", "redis-cli")


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, bus: bool = False) -> list[int]:
    """`count` free ports below 55536; with `bus`, port + 10000 (the cluster bus) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 45000)
        if port in ports or not _port_free(port) or (bus and not _port_free(port + 10000)):
            continue
        ports.append(port)
    return ports


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(sync_redis.RedisError, OSError):
            if check():
                return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Node:
    port: int
    folder: Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "redis.log").open("ab")
        self.proc = subprocess.Popen(["redis-server", *self.args], cwd=self.folder, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        wait_for(self.ping, 10, f"redis-server on port {self.port}")
        return self

    def client(self) -> sync_redis.Redis:
        return sync_redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def ping(self) -> bool:
        with self.client() as c:
            return bool(c.ping())

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def server_args(port: int, *extra: str) -> list[str]:
    return ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--protected-mode", "no", *extra]


@dataclass
class Cluster:
    """Three masters, no replicas, slots spread by `redis-cli --cluster create`."""

    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @classmethod
    def start(cls, root: Path, masters: int = 3) -> Cluster:
        cluster = cls()
        for port in free_ports(masters, bus=True):
            args = server_args(port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                               "--cluster-node-timeout", "2000")
            cluster.nodes.append(Node(port, root / f"cluster-{port}", args))
        try:
            for node in cluster.nodes:
                node.start()
            subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in cluster.nodes),
                            "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
            for node in cluster.nodes:
                wait_for(lambda n=node: n.client().execute_command("CLUSTER INFO")["cluster_state"] == "ok", 30,
                         f"cluster_state:ok on {node.port}")
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def flush(self) -> None:
        for node in self.nodes:
            with node.client() as c:
                c.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill(signal.SIGTERM)


@dataclass
class SentinelSetup:
    """One primary, one replica and three Sentinels watching them (quorum 2, down after 1 s)."""

    service: str
    primary: Node
    replica: Node
    sentinels: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels) + f"/{self.service}"

    @classmethod
    def start(cls, root: Path, service: str = "responder") -> SentinelSetup:
        p1, p2, *sentinel_ports = free_ports(5)
        primary = Node(p1, root / f"primary-{p1}", server_args(p1))
        replica = Node(p2, root / f"replica-{p2}", server_args(p2, "--replicaof", "127.0.0.1", str(p1)))
        setup = cls(service, primary, replica)
        try:
            primary.start()
            replica.start()
            for port in sentinel_ports:
                folder = root / f"sentinel-{port}"
                folder.mkdir(parents=True)
                conf = folder / "sentinel.conf"  # sentinel rewrites its config: it must be a writable file
                conf.write_text(f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {folder}\n"
                                "sentinel resolve-hostnames no\n"
                                f"sentinel monitor {service} 127.0.0.1 {p1} 2\n"
                                f"sentinel down-after-milliseconds {service} 1000\n"
                                f"sentinel failover-timeout {service} 5000\n"
                                f"sentinel parallel-syncs {service} 1\n")
                setup.sentinels.append(Node(port, folder, [str(conf), "--sentinel"]).start())
            setup.wait_stable()
        except BaseException:
            setup.stop()
            raise
        return setup

    def current_primary(self) -> int | None:
        """The primary's port, when every live Sentinel agrees on it."""
        ports = set()
        for sentinel in self.sentinels:
            if not sentinel.alive:
                continue
            with sentinel.client() as c:
                addr = c.sentinel_get_master_addr_by_name(self.service)
            ports.add(int(addr[1]) if addr else None)
        return ports.pop() if len(ports) == 1 else None

    def node(self, port: int) -> Node:
        return self.primary if self.primary.port == port else self.replica

    def wait_stable(self, timeout: float = 30) -> None:
        """Every Sentinel knows the other two and the replica, and the replica's link is up."""

        def ready() -> bool:
            primary = self.current_primary()
            if primary is None:
                return False
            replica = self.replica if primary == self.primary.port else self.primary
            with replica.client() as c:
                if c.info("replication").get("master_link_status") != "up":
                    return False
            for sentinel in self.sentinels:
                with sentinel.client() as c:
                    state = c.sentinel_master(self.service)
                    if int(state["num-other-sentinels"]) < 2 or int(state["num-slaves"]) < 1:
                        return False
            return True

        wait_for(ready, timeout, "a stable Sentinel topology", interval=0.2)

    def stop(self) -> None:
        for node in [*self.sentinels, self.primary, self.replica]:
            node.kill(signal.SIGTERM)
