"""`responder run | check`: parse arguments, load the config, run the app."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
import traceback
from pathlib import Path

from aiohttp import web

from responder import __version__
from responder.cli_tools import add_commands as add_tool_commands
from responder.config.loader import LoadedConfig, bundled_config_path, load_config, secret_values
from responder.errors import ConfigError

__all__ = ["main"]


def _config_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("RESPONDER_CONFIG"):
        return Path(os.environ["RESPONDER_CONFIG"])
    local = Path("responder.yaml")
    return local if local.is_file() else bundled_config_path()


def _load(arg: str | None) -> LoadedConfig | None:
    path = _config_path(arg)
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return 1
    print(f"ok: {loaded.path} — {len(loaded.rules)} rules, {len(loaded.playbooks)} playbooks, "
          f"{len(loaded.probes)} probes from {len(loaded.files)} files")
    for probe_id, reason in loaded.disabled_probes.items():
        print(f"note: probe {probe_id} is disabled: {reason}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from responder.demo.cli import cmd_demo as demo

    return demo(args)


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (`pip install 'responder[speed]'`), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def cmd_run(args: argparse.Namespace) -> int:
    from responder.logs import configure_logging

    loaded = _load(args.config)
    if loaded is None:
        return 1
    host = args.host or loaded.config.server.host
    port = args.port if args.port is not None else loaded.config.server.port
    try:  # a malformed REDIS_URL is a configuration problem, said before anything starts
        from responder.store.redis import parse_redis_url

        parse_redis_url(os.environ.get("REDIS_URL") or loaded.config.redis.url or "redis://")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.workers > 1 and not (os.environ.get("REDIS_URL") or loaded.config.redis.url):
        print("--workers needs REDIS_URL (or redis.url): the embedded store lives inside one process, "
              "so several workers would not share incidents, rules or runs", file=sys.stderr)
        return 2
    if args.workers > 1 and port == 0:
        print("--workers needs a fixed --port: every worker listens on it (SO_REUSEPORT)", file=sys.stderr)
        return 2
    configure_logging(loaded.config.log_level, secrets=lambda: secret_values(loaded.config), cache_loggers=True)
    if args.workers == 1:
        _serve(loaded, host, port, reuse_port=False)
        return 0
    return _serve_workers(loaded, host, port, args.workers)


def _serve(loaded: LoadedConfig, host: str, port: int, *, reuse_port: bool) -> None:
    from responder.app import create_app
    from responder.probes.reload import watch_sighup

    app = create_app(loaded)
    watch_sighup(app)  # SIGHUP re-reads the probe files
    # Everything built so far (modules, the configuration, the app) lives as long as the process: out of the
    # collector's sight, a full collection no longer walks those ~1M objects (tens of ms each time, under load)
    gc.collect()
    gc.freeze()
    web.run_app(app, host=host, port=port, print=None, access_log=None, reuse_port=reuse_port or None,
                loop=event_loop(), shutdown_timeout=loaded.config.server.shutdown_timeout.total_seconds())


def _serve_workers(loaded: LoadedConfig, host: str, port: int, workers: int) -> int:
    """Fork `workers` processes that each run the whole daemon on the same port (SO_REUSEPORT).

    Each worker is one more replica: its own consumer in the engine's consumer group, its own runs
    and probe schedule, all coordinated through Redis as separate hosts would be. The parent only
    forwards SIGTERM/SIGINT/SIGHUP and, when a worker dies, stops the others and exits non-zero.
    """
    children: list[int] = []
    parent = os.getpid()
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker: no event loop or thread exists before this point
            code = 1
            try:
                _exit_with_parent(parent)
                _serve(loaded, host, port, reuse_port=True)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        children.append(pid)

    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True  # the workers are already told: one of them ending is no reason to signal again
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM if signum == signal.SIGINT else signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    code = 0
    while children:
        pid, status = os.wait()
        if pid not in children:
            continue
        children.remove(pid)
        exit_code = os.waitstatus_to_exitcode(status)
        if exit_code != 0:
            code = code or 1
        if not stopping and children:  # one worker ended: the daemon stops as a whole
            stopping = True
            forward(signal.SIGTERM, None)
    return code


def _exit_with_parent(parent: int) -> None:
    """A worker gets SIGTERM when the parent dies, even by SIGKILL (Linux), instead of serving on as an orphan."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before that
        os._exit(0)


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responder", description="Event-driven incident responder.")
    parser.add_argument("--version", action="version", version=f"responder {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", help="path to responder.yaml (default: ./responder.yaml, else the bundled one)")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--workers", type=_positive, default=1,
                     help="worker processes sharing the port (SO_REUSEPORT); more than 1 needs REDIS_URL")
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="validate responder.yaml, rules and playbooks")
    check.add_argument("--config", help="path to responder.yaml")
    check.set_defaults(func=cmd_check)
    demo = sub.add_parser("demo", help="a game day in one command: a bad deploy rolled back, a database outage paged")
    demo.add_argument("--exit", action="store_true",
                      help="stop at the end instead of waiting for Ctrl-C (exit 0 when both variants went as expected)")
    demo.add_argument("--port", type=int, default=8080, help="the daemon's port (default 8080; a free one when taken)")
    demo.add_argument("--verbose", action="store_true", help="also print the daemon's log lines (stderr)")
    demo.set_defaults(func=cmd_demo)
    add_tool_commands(sub)  # test, replay, schema
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
