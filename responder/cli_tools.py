"""`responder test | replay | schema`: the operator's tools around the daemon (registered by responder.cli)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

__all__ = ["add_commands", "cmd_replay", "cmd_schema", "cmd_test"]


def cmd_test(args: argparse.Namespace) -> int:
    from responder.rehearsal import quiet_logs
    from responder.testing.runner import run_paths

    with quiet_logs():
        return asyncio.run(run_paths(args.paths, args.config))


def cmd_replay(args: argparse.Namespace) -> int:
    from responder.cli import _config_path
    from responder.config.loader import load_config
    from responder.errors import ConfigError
    from responder.rehearsal import quiet_logs
    from responder.replay import parse_moment, read_capture, render, replay

    capture_path = Path(args.file)
    try:
        capture = read_capture(capture_path)
    except OSError as exc:
        print(f"{args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not capture.events:
        print(f"{args.file}: no events" + (f" ({len(capture.skipped)} lines are not events)" if capture.skipped
                                           else ""), file=sys.stderr)
        return 1
    first = capture.events[0].received_at
    try:
        start = parse_moment(args.start, first) if args.start else None
        end = parse_moment(args.end, first) if args.end else None
    except ValueError as exc:
        print(f"--from/--to: {exc}", file=sys.stderr)
        return 2
    if start and end and end < start:
        print("--to is before --from", file=sys.stderr)
        return 2
    rules_dirs = [str(Path(d).resolve()) for d in args.rules] if args.rules else None
    try:
        loaded = load_config(_config_path(args.config), rules_dirs=rules_dirs)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    with quiet_logs():
        report = asyncio.run(replay(loaded, capture, args.file, start=start, end=end,
                                    progress=None if args.no_progress else sys.stderr))
    sys.stdout.write(render(report))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from responder.schema import SCHEMAS, write

    out = Path(args.out)
    differing = write(out, check=args.check)
    if args.check:
        for path in differing:
            print(f"{path} is out of date: run `responder schema --out {args.out}`", file=sys.stderr)
        return 1 if differing else 0
    for name in SCHEMAS:
        state = "written" if str(out / name) in differing else "unchanged"
        print(f"{out / name}: {state}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    test = sub.add_parser("test", help="run pipeline tests (*_test.yaml) on a virtual clock, in dry-run")
    test.add_argument("paths", nargs="+", metavar="PATH", help="test files, or folders searched for *_test.yaml")
    test.add_argument("--config", help="responder.yaml to test against (default: the file's `config:`, else one "
                                       "next to the test file or in its parent folder)")
    test.set_defaults(func=cmd_test)
    replay = sub.add_parser("replay", help="replay a recorded event capture (JSONL) through the rules, in dry-run")
    replay.add_argument("file", metavar="FILE", help="JSONL capture (record: {path: ...} in responder.yaml)")
    replay.add_argument("--config", help="path to responder.yaml (default: ./responder.yaml, else the bundled one)")
    replay.add_argument("--rules", action="append", metavar="DIR",
                        help="rules folder to use instead of the config's rules_dirs (repeatable)")
    replay.add_argument("--from", dest="start", metavar="T",
                        help="first moment: an ISO time (2024-11-21T09:30:00Z) or an offset from the first event (15m)")
    replay.add_argument("--to", dest="end", metavar="T", help="last moment, same forms")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    replay.set_defaults(func=cmd_replay)
    schema = sub.add_parser("schema", help="write JSON Schema for responder.yaml, rules, playbooks, probes, tests")
    schema.add_argument("--out", default="schema", metavar="DIR", help="folder to write to (default: ./schema)")
    schema.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is out of date")
    schema.set_defaults(func=cmd_schema)
