"""Parsing `/incident <subcommand> [args]` into a Command, or the usage text. Pure: no I/O.

Slack sends the text after the command with `&`, `<` and `>` escaped as HTML entities; they are unescaped
here (mentions such as `<@U0DANA001>` come through as written). Incident ids may be written `12` or `#12`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from responder.chatops.config import GROUPS

__all__ = ["SPECS", "Command", "Spec", "Usage", "help_text", "parse"]


@dataclass(frozen=True)
class Spec:
    name: str
    args: str
    summary: str
    least: int
    most: int
    #: the last argument takes the rest of the text (a note, a reason)
    rest: bool = False


SPECS: dict[str, Spec] = {s.name: s for s in (
    Spec("help", "", "this help", 0, 0),
    Spec("list", "", "open incidents", 0, 0),
    Spec("status", "[id]", "one incident, or the overall status", 0, 1),
    Spec("ack", "<id>", "acknowledge an incident", 1, 1),
    Spec("resolve", "<id> [note]", "resolve an incident", 1, 2, rest=True),
    Spec("note", "<id> <text>", "add a note to an incident's timeline", 2, 2, rest=True),
    Spec("rollback", "<service> [deployment]", "roll a service back (shows the plan, asks to confirm)", 1, 2),
    Spec("restart", "<service> [process]", "restart a service (shows the plan, asks to confirm)", 1, 2),
    Spec("run", "<playbook> [service]", "run a playbook for a new incident", 1, 2),
    Spec("silence", "<matchers> <duration> [reason]", "silence matching alerts, e.g. `service=api 2h deploy`",
         2, 3, rest=True),
    Spec("silences", "", "active silences", 0, 0),
    Spec("unsilence", "<id>", "end a silence now", 1, 1),
)}


@dataclass(frozen=True)
class Command:
    name: str
    args: list[str] = field(default_factory=list)
    #: the whole text as typed (unescaped), for the audit log
    text: str = ""

    def arg(self, index: int) -> str | None:
        return self.args[index] if index < len(self.args) else None


@dataclass(frozen=True)
class Usage:
    """A refusal to parse: `text` says what is wrong and how to write it."""

    text: str
    name: str | None = None


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def incident_id(raw: str) -> str:
    return raw.strip().lstrip("#")


def usage_line(command: str, spec: Spec) -> str:
    return f"`{command} {spec.name}{' ' + spec.args if spec.args else ''}`"


def help_text(command: str) -> str:
    lines = [f"*{command}* — incidents from Slack"]
    for spec in SPECS.values():
        group = next(g for g, members in GROUPS.items() if spec.name in members)
        marker = " (destructive)" if group == "destructive" else ""
        lines.append(f"{usage_line(command, spec)} — {spec.summary}{marker}")
    return "\n".join(lines)


def parse(text: str, command: str = "/incident") -> Command | Usage:
    text = unescape(text or "").strip()
    words = text.split()
    if not words:
        return Command("help", [], text)
    name = words[0].lower()
    spec = SPECS.get(name)
    if spec is None:
        return Usage(f"Unknown subcommand `{name}`.\n\n{help_text(command)}")
    rest = text[len(words[0]):].strip()
    if name == "silence":
        return _silence(rest, text, command, spec)
    args = rest.split(maxsplit=spec.most - 1) if spec.rest and spec.most else rest.split()
    if not spec.least <= len(args) <= spec.most:
        return Usage(f"Usage: {usage_line(command, spec)} — {spec.summary}", name)
    if name in ("status", "ack", "resolve", "note") and args:
        args[0] = incident_id(args[0])
        if not args[0]:
            return Usage(f"Usage: {usage_line(command, spec)} — {spec.summary}", name)
    return Command(name, args, text)


def _silence(rest: str, text: str, command: str, spec: Spec) -> Command | Usage:
    """`<matchers> <duration> [reason]`: read by the silences' own parser (quoted values may hold spaces), so
    here only its presence is checked; the single argument is everything after `silence`."""
    if len(rest.split()) < 2:
        return Usage(f"Usage: {usage_line(command, spec)} — {spec.summary}; the duration is like 30m, 2h or 1d",
                     "silence")
    return Command("silence", [rest], text)
