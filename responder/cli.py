"""`responder run | check`: parse arguments, load the config, run the app."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from aiohttp import web

from responder import __version__
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


def cmd_run(args: argparse.Namespace) -> int:
    from responder.app import create_app
    from responder.logs import configure_logging
    from responder.probes.reload import watch_sighup

    loaded = _load(args.config)
    if loaded is None:
        return 1
    configure_logging(loaded.config.log_level, secrets=lambda: secret_values(loaded.config))
    host = args.host or loaded.config.server.host
    port = args.port if args.port is not None else loaded.config.server.port
    app = create_app(loaded)
    watch_sighup(app)  # SIGHUP re-reads the probe files
    web.run_app(app, host=host, port=port, print=None, access_log=None)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responder", description="Event-driven incident responder.")
    parser.add_argument("--version", action="version", version=f"responder {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", help="path to responder.yaml (default: ./responder.yaml, else the bundled one)")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="validate responder.yaml, rules and playbooks")
    check.add_argument("--config", help="path to responder.yaml")
    check.set_defaults(func=cmd_check)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
