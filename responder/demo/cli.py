"""`responder demo`: run the game day, print the story and the summary, then (interactively) keep the
daemon up until Ctrl-C; `--exit` stops at the end, exit code 0 when both variants behaved as expected."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import signal
import sys
import time
from typing import TextIO

from responder.demo.scenario import Report, play, print_summary
from responder.demo.world import World

__all__ = ["cmd_demo", "run_demo"]


def _links(world: World, report: Report) -> list[tuple[str, str]]:
    """Where to look: the status page, the incidents (API, and the dashboard and postmortem when built in)."""
    routes = world.routes()
    first = report.variants[0].incidents[0].id if report.variants and report.variants[0].incidents else "1"
    links = [("status page", f"{world.url}/status"), ("incidents API", f"{world.url}/api/v1/incidents"),
             ("variant 1's incident", f"{world.url}/api/v1/incidents/{first}")]
    for label, path in (("postmortem", "/api/v1/incidents/{id}/postmortem.md"), ("dashboard", "/ui/"),
                        ("variant 1 on the dashboard", "/ui/incidents/{id}")):
        if path in routes:
            links.append((label, world.url + path.replace("{id}", first)))
    links.append(("the demo API's /health", f"{world.api.url}/health"))
    links.append(("the demo's configuration", str(world.config_dir)))
    return links


async def run_demo(*, port: int = 8080, exit_at_end: bool = True, out: TextIO | None = None,
                   stop: asyncio.Event | None = None) -> int:
    """Play both variants; with `exit_at_end=False`, keep everything up until `stop` is set. 0 = as expected."""
    stop = stop or asyncio.Event()
    started = time.monotonic()
    async with World(port=port, out=out) as world:
        story = world.story
        story.say(f"responder demo: a game day on 127.0.0.1 — the daemon at {world.url} (embedded store, no Redis), "
                  "the stand-ins for Railway, Statuspage, Slack and PagerDuty, and the API it looks after.", "demo")
        if world.port_note:
            story.say(f"  ({world.port_note})")
        timing = world.timing
        story.say(f"  Time is compressed: Sentry's 10-minute error-rate window is {world.api.window:g}s, the probe "
                  f"runs every {timing.probe_every}, the playbook settles {timing.settle} and verifies within "
                  f"{timing.verify_within}.")
        game = asyncio.create_task(play(world))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({game, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not game.done():
            game.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await game
            story.say("Stopped before the end.", "fail")
            return 130
        stopped.cancel()
        report = game.result()
        print_summary(world, report, time.monotonic() - started)
        code = 0 if report.ok else 1
        if exit_at_end:
            return code
        world.api.database_up = True  # the game is over: the database is repaired, the last incident closes
        story.say()
        story.say("The database is repaired and the daemon stays up — Ctrl-C to stop:", "demo")
        for label, url in _links(world, report):
            story.say(f"  {label:<26} {url}")
        await stop.wait()
        story.say("Stopping.", "demo")
        return code


def cmd_demo(args: argparse.Namespace) -> int:
    from responder.logs import configure_logging

    configure_logging("INFO" if args.verbose else "ERROR", stream=sys.stderr)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await run_demo(port=args.port, exit_at_end=args.exit, stop=stop)

    return asyncio.run(main())
