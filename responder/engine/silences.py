"""Silences and maintenance windows: matching events are kept, but open no incident and start no playbook.

A silence has the rule matchers' vocabulary (`source`, `name`, `service`, `severity`, `labels.*`; plain value,
`regex`, `in`, `not`, `not_in`), a start and an end, and optionally a weekly recurrence in a time zone
(every Sunday 02:00-04:00 Europe/Berlin); a recurring silence's `ends_at` is when the schedule stops.

The evaluator asks `SilenceService.check()` before a rule opens an incident. A silenced firing is recorded
(the event stays in the stream; a hit on the silence, the `responder_events_silenced` counter, a log line) and
the rule group is marked "suppressed": its rule state keeps tracking the truth (it stays firing), and as
soon as no silence matches any more, the next matching event, or the tick at the silence's end when the
condition still holds, opens the incident and starts the playbook as usual.

Text syntax for matchers (Slack, and the API's `matchers` when given as a string), see `parse_matchers`:

    service=api name=~"error.*" severity!=info env=prod
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, Field, ValidationError, field_validator, model_validator

from responder.clock import Clock, to_ms
from responder.config.base import Duration, StrictModel, parse_duration
from responder.engine.rules import Match, Matcher, Rule
from responder.events import Event
from responder.logs import get_logger
from responder.metrics import Metrics

if TYPE_CHECKING:
    from responder.store.silences import SilenceStore

__all__ = [
    "ConfiguredSilence",
    "ConfiguredSilences",
    "Silence",
    "SilenceError",
    "SilenceNotFound",
    "SilenceReadOnly",
    "SilenceService",
    "SilenceSpec",
    "Suppressed",
    "WeeklyRecurrence",
    "format_matchers",
    "parse_matchers",
    "parse_silence_command",
]

log = get_logger(__name__)

#: expired silences (and their hits) stay readable this long after their end, then Redis drops them
RETENTION = timedelta(hours=24)
#: the most recent suppressed firings kept per silence
HITS_KEPT = 100

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_FULL_DAYS = {"monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu", "friday": "fri",
              "saturday": "sat", "sunday": "sun", "tues": "tue", "thur": "thu", "thurs": "thu"}
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")
_TOP_FIELDS = ("source", "name", "service", "severity")
_NOT_SILENCEABLE = {"status", "value", "summary", "url", "fingerprint", "rule"}


class SilenceError(ValueError):
    """A silence could not be created: `field` names the input at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class SilenceNotFound(LookupError):
    pass


class SilenceReadOnly(SilenceError):
    """A silence from responder.yaml: change it there."""


def _minutes(text: str) -> int:
    m = _HHMM.match(text)
    assert m is not None  # validated
    return int(m.group(1)) * 60 + int(m.group(2))


def _local(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """Wall-clock `minutes` after midnight of `day` in `zone` (24:00 is the next midnight).

    A time that does not exist on a spring-forward day is read with the offset before the change
    (02:30 in Europe/Berlin on the last Sunday of March is 03:30 CEST); a repeated autumn hour means its
    first occurrence (fold=0).
    """
    extra_days, minute = divmod(minutes, 1440)
    return datetime.combine(day + timedelta(days=extra_days), time(minute // 60, minute % 60), tzinfo=zone)


class WeeklyRecurrence(StrictModel):
    """A weekly maintenance window in local time: on `days`, from `start` to `end`, in `timezone`."""

    days: list[Weekday] = Field(min_length=1, description="mon..sun (full names accepted)")
    start: str = Field(description="local start time HH:MM")
    end: str = Field(description="local end time HH:MM; 24:00 is midnight; earlier than start = the next day")
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Berlin")

    @field_validator("days", mode="before", json_schema_input_type=str | list[str])
    @classmethod
    def _days(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            raw = [d for d in re.split(r"[\s,]+", raw) if d]
        if not isinstance(raw, list):
            return raw
        out = []
        for day in raw:
            if not isinstance(day, str):
                raise ValueError("days are names like mon, tue, sunday")
            word = day.strip().lower()
            word = _FULL_DAYS.get(word, word)
            if word not in _DAYS:
                raise ValueError(f"unknown day {day!r}: use mon, tue, wed, thu, fri, sat, sun")
            if word not in out:
                out.append(word)
        return sorted(out, key=_DAYS.index)

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        m = _HHMM.match(value.strip())
        if not m or int(m.group(2)) > 59 or int(m.group(1)) > 24 or (int(m.group(1)) == 24 and m.group(2) != "00"):
            raise ValueError(f"invalid time {value!r}: use HH:MM (00:00 to 24:00)")
        return f"{int(m.group(1)):02d}:{m.group(2)}"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name like Europe/Berlin or UTC") from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> WeeklyRecurrence:
        if _minutes(self.start) % 1440 == _minutes(self.end) % 1440:
            raise ValueError("start and end are the same time: the window would be empty or a whole day")
        return self

    def windows(self, around: datetime, days_after: int = 8) -> Iterator[tuple[datetime, datetime]]:
        """The windows (UTC start, end) that start from the local day before `around` to `days_after` later."""
        zone = ZoneInfo(self.timezone)
        first = around.astimezone(zone).date() - timedelta(days=1)
        start_m, end_m = _minutes(self.start), _minutes(self.end)
        if end_m <= start_m:
            end_m += 1440  # crosses midnight: it ends on the next day
        for offset in range(days_after + 2):
            day = first + timedelta(days=offset)
            if _DAYS[day.weekday()] in self.days:
                yield _local(day, start_m, zone).astimezone(UTC), _local(day, end_m, zone).astimezone(UTC)

    def describe(self) -> str:
        days = ",".join(self.days) if len(self.days) < 7 else "daily"
        return f"{days} {self.start}-{self.end} {self.timezone}"


def _require_matchers(match: Match) -> Match:
    if not (match.source or match.name or match.service or match.severity or match.labels):
        raise ValueError("give at least one matcher (source, name, service, severity or labels), "
                         "a silence that matches everything is refused")
    return match


def _matchers_before(raw: Any) -> Any:
    if isinstance(raw, str):
        return parse_matchers(raw)
    return raw


SilenceMatch = Annotated[Match, AfterValidator(_require_matchers)]


def _tests(match: Match) -> list[tuple[str, Callable[[Any], bool]]]:
    """The rule matchers' own per-field tests (Matcher.compile), keyed by the event path they read."""
    fields: list[tuple[str, Matcher | None]] = [(f, getattr(match, f)) for f in _TOP_FIELDS]
    fields += [(f"labels.{k}", m) for k, m in match.labels.items()]
    return [(path, m.compile()) for path, m in fields if m is not None]


class Silence(StrictModel):
    """A stored silence (from the API, Slack, or responder.yaml)."""

    id: str
    matchers: SilenceMatch
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = Field(default=None, description="None only for an open-ended recurrence")
    recurrence: WeeklyRecurrence | None = None
    comment: str = ""
    created_by: str
    created_at: AwareDatetime
    source: Literal["api", "config"] = "api"
    expired_by: str | None = Field(default=None, description="who ended it early")

    @model_validator(mode="after")
    def _bounds(self) -> Silence:
        if self.ends_at is None and self.recurrence is None:
            raise ValueError("a one-off silence needs an end")
        if self.ends_at is not None and self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")
        return self

    @cached_property
    def _compiled(self) -> list[tuple[str, Callable[[Any], bool]]]:
        return _tests(self.matchers)

    def matches(self, lookup: Callable[[str], Any]) -> bool:
        """Every matcher holds for the value `lookup(path)` gives (Event.field for an event)."""
        return all(test(lookup(path)) for path, test in self._compiled)

    def intervals(self, around: datetime) -> list[tuple[datetime, datetime]]:
        """The silence's active periods near `around` (or near its start, when that is later)."""
        ends = self.ends_at or datetime.max.replace(tzinfo=UTC)
        if self.recurrence is None:
            return [(self.starts_at, ends)]
        out = []
        for start, end in self.recurrence.windows(max(around, self.starts_at)):
            start, end = max(start, self.starts_at), min(end, ends)
            if start < end:
                out.append((start, end))
        return out

    def active_at(self, now: datetime) -> bool:
        return any(start <= now < end for start, end in self.intervals(now))

    def active_until(self, now: datetime) -> datetime | None:
        """The end of the active period that contains `now` (None when inactive)."""
        ends = [end for start, end in self.intervals(now) if start <= now < end]
        return max(ends) if ends else None

    def next_start(self, now: datetime) -> datetime | None:
        starts = [start for start, _ in self.intervals(now) if start > now]
        return min(starts) if starts else None

    def state(self, now: datetime) -> Literal["active", "scheduled", "expired"]:
        if self.active_at(now):
            return "active"
        if (self.ends_at is not None and now >= self.ends_at) or self.next_start(now) is None:
            return "expired"
        return "scheduled"

    def describe(self, now: datetime | None = None) -> str:
        """One line for people: `sil-1a2b3c4d service=api until 2026-01-01 14:00 UTC (maintenance)`."""
        parts = [self.id, format_matchers(self.matchers)]
        if self.recurrence is not None:
            parts.append(self.recurrence.describe())
        if self.ends_at is not None:
            parts.append(("until " if self.recurrence is None else "through ")
                         + self.ends_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))
        if now is not None:
            parts.append(f"[{self.state(now)}]")
        if self.comment:
            parts.append(f"({self.comment})")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SilenceSpec(StrictModel):
    """What a person asks for (API body, Slack): matchers and a time span, optionally recurring weekly.

    The end is `ends_at` or `duration` (from `starts_at`, default now). With `recurrence` both are optional:
    then they say when the weekly schedule stops.
    """

    matchers: SilenceMatch = Field(description="rule matchers, or the text syntax: service=api name=~\"err.*\"")
    starts_at: AwareDatetime | None = Field(default=None, description="default: now")
    ends_at: AwareDatetime | None = None
    duration: Duration | None = Field(default=None, description="instead of ends_at: 30m, 2h, 1d")
    recurrence: WeeklyRecurrence | None = None
    comment: str = Field(default="", max_length=2000)
    created_by: str | None = Field(default=None, max_length=200, description="who asks (API: shown as user:NAME)")

    @field_validator("matchers", mode="before", json_schema_input_type=str | Match)
    @classmethod
    def _text(cls, raw: Any) -> Any:
        return _matchers_before(raw)

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("duration must be longer than 0s")
        return value


class ConfiguredSilence(StrictModel):
    """A silence in responder.yaml (`silences:`), usually a recurring maintenance window; read-only at runtime."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", description="unique id (lowercase, digits, - _ .)")
    matchers: SilenceMatch
    starts_at: AwareDatetime | None = Field(default=None, description="default: always")
    ends_at: AwareDatetime | None = Field(default=None, description="required without recurrence")
    recurrence: WeeklyRecurrence | None = None
    comment: str = ""

    @field_validator("matchers", mode="before", json_schema_input_type=str | Match)
    @classmethod
    def _text(cls, raw: Any) -> Any:
        return _matchers_before(raw)

    @model_validator(mode="after")
    def _bounds(self) -> ConfiguredSilence:
        if self.ends_at is None and self.recurrence is None:
            raise ValueError("give ends_at, or a weekly recurrence")
        if self.ends_at is not None and self.starts_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def to_silence(self) -> Silence:
        start = self.starts_at or datetime(1970, 1, 1, tzinfo=UTC)
        return Silence(id=self.id, matchers=self.matchers, starts_at=start, ends_at=self.ends_at,
                       recurrence=self.recurrence, comment=self.comment, created_by="config", created_at=start,
                       source="config")


def _unique_ids(silences: list[ConfiguredSilence]) -> list[ConfiguredSilence]:
    seen: set[str] = set()
    for s in silences:
        if s.id in seen:
            raise ValueError(f"silence id {s.id!r} is used twice")
        seen.add(s.id)
    return silences


ConfiguredSilences = Annotated[list[ConfiguredSilence], AfterValidator(_unique_ids)]


# --- the text syntax --------------------------------------------------------------------------------------

_KEY = r"[A-Za-z_][A-Za-z0-9_./\-]*"
_MATCHER = re.compile(rf'({_KEY})(=~|!~|!=|==|=)("(?:[^"\\]|\\.)*"|[^\s",]*)')
_SEPARATORS = re.compile(r"[\s,]*")
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"'})
_OPERATORS = {"=": "eq", "==": "eq", "!=": "not", "=~": "regex"}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r'\\(["\\])', r"\1", value[1:-1])  # \" and \\; other escapes (\d, \.) stay for the regex
    return value


def _scan(text: str) -> tuple[list[tuple[str, str, str]], str]:
    """Leading `key<op>value` matchers (optionally in {...}, separated by spaces or commas) and the rest."""
    text = text.translate(_QUOTES)
    pos = _SEPARATORS.match(text, 0).end()  # type: ignore[union-attr]
    braced = text.startswith("{", pos)
    if braced:
        pos = _SEPARATORS.match(text, pos + 1).end()  # type: ignore[union-attr]
    found = []
    while pos < len(text):
        if braced and text.startswith("}", pos):
            pos = _SEPARATORS.match(text, pos + 1).end()  # type: ignore[union-attr]
            braced = False
            break
        m = _MATCHER.match(text, pos)
        if m is None or (m.end() < len(text) and not (text[m.end()].isspace() or text[m.end()] in ",}")):
            break
        found.append((m.group(1), m.group(2), _unquote(m.group(3))))
        pos = _SEPARATORS.match(text, m.end()).end()  # type: ignore[union-attr]
    if braced:
        raise SilenceError("matchers opened with { are not closed with }", "matchers")
    return found, text[pos:]


def _merge(triples: list[tuple[str, str, str]]) -> Match:
    top: dict[str, dict[str, Any]] = {}
    labels: dict[str, dict[str, Any]] = {}
    for key, op, value in triples:
        if key in _NOT_SILENCEABLE or key.startswith("annotations."):
            raise SilenceError(f"cannot silence on {key!r}: use source, name, service, severity or a label",
                               "matchers")
        if op == "!~":
            raise SilenceError(f"{key}!~ is not supported: use {key}!=value, or a negative regex like "
                               f'{key}=~"(?!{value}$).*"', "matchers")
        if value == "":
            raise SilenceError(f"{key}{op} needs a value (quote it when it has spaces)", "matchers")
        bucket = labels.setdefault(key[7:], {}) if key.startswith("labels.") else (
            top.setdefault(key, {}) if key in _TOP_FIELDS else labels.setdefault(key, {}))
        kind = _OPERATORS[op]
        if kind == "not":
            if "not" in bucket:
                bucket["not_in"] = [bucket.pop("not"), value]
            elif "not_in" in bucket:
                bucket["not_in"].append(value)
            else:
                bucket["not"] = value
        elif kind in bucket and bucket[kind] != value:
            hint = f' (use {key}=~"a|b" for alternatives)' if kind == "eq" else ""
            raise SilenceError(f"{key}{op} is given twice with different values{hint}", "matchers")
        else:
            bucket[kind] = value
    try:
        return Match.model_validate({**top, "labels": labels})
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"] if p not in ("regex",))
        raise SilenceError(f"{where}: {str(error['msg']).removeprefix('Value error, ')}", "matchers") from None


def parse_matchers(text: str) -> Match:
    """Parse the matcher text syntax into the rule matchers' `Match`.

    Matchers are separated by spaces (or commas; the whole list may be wrapped in {...}) and all must hold:

        key=value      equal                    service=api
        key!=value     not equal (repeat: none)  severity!=info severity!=warning
        key=~regex     full-match regex         name=~"error.*"
    Keys: source, name, service, severity; anything else is a label (env=prod, or labels.env=prod).
    Quote values with spaces, commas or quotes: comment="a \\"b\\"" (Slack's curly quotes are accepted).
    Inside quotes only \\" and \\\\ are escapes, so regexes keep \\d and \\. as written.
    """
    triples, rest = _scan(text)
    if rest.strip():
        raise SilenceError(f"cannot read {rest.strip()[:40]!r}: use key=value, key!=value or key=~regex", "matchers")
    if not triples:
        raise SilenceError('give at least one matcher, like service=api or name=~"error.*"', "matchers")
    return _merge(triples)


def parse_silence_command(text: str) -> tuple[Match, timedelta, str]:
    """`<matchers> <duration> [reason]` (Slack's `/incident silence`): `service=api 2h deploy of v42`."""
    triples, rest = _scan(text)
    if not triples:
        raise SilenceError('give at least one matcher first, like: service=api 2h maintenance', "matchers")
    match = _merge(triples)
    words = rest.strip().split(None, 1)
    if not words:
        raise SilenceError("give a duration after the matchers, like 30m, 2h or 1d", "duration")
    try:
        duration = parse_duration(words[0])
    except ValueError:
        raise SilenceError(f"{words[0]!r} is not a duration (or a matcher): use 30m, 2h, 1d", "duration") from None
    if duration <= timedelta(0):
        raise SilenceError("the duration must be longer than 0s", "duration")
    return match, duration, words[1].strip() if len(words) > 1 else ""


def _quote(value: str) -> str:
    if value and re.fullmatch(r'[^\s",{}]+', value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_matchers(match: Match) -> str:
    """The text syntax for `match` (parse_matchers reads it back); `in` lists show as a regex alternative."""
    parts = []
    fields: list[tuple[str, Matcher | None]] = [(f, getattr(match, f)) for f in _TOP_FIELDS]
    fields += [(k if k not in _TOP_FIELDS and k not in _NOT_SILENCEABLE else f"labels.{k}", m)
               for k, m in match.labels.items()]
    for key, m in fields:
        if m is None:
            continue
        if m.eq is not None:
            parts.append(f"{key}={_quote(m.eq)}")
        if m.regex is not None:
            parts.append(f"{key}=~{_quote(m.regex)}")
        if m.in_ is not None:
            parts.append(f"{key}=~{_quote('|'.join(re.escape(v) for v in m.in_))}")
        if m.not_ is not None:
            parts.append(f"{key}!={_quote(m.not_)}")
        for value in m.not_in or ():
            parts.append(f"{key}!={_quote(value)}")
    return " ".join(parts)


# --- the service --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suppressed:
    """A rule group whose firing a silence suppressed: it is still firing, with no incident."""

    key: str
    rule_id: str
    silence_id: str
    group: dict[str, str]
    sample: dict[str, Any] | None


def _group_lookup(rule: Rule, group: Mapping[str, str]) -> Callable[[str], Any]:
    """What is known of a group without an event (a window rule firing on `count < 1`)."""
    source, name = rule.match.equality_key()

    def lookup(path: str) -> Any:
        if path == "source":
            return source
        if path == "name":
            return name
        if path == "severity":
            return rule.severity.value
        return group.get(path.removeprefix("labels."))

    return lookup


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment is not None else None


def new_silence_id() -> str:
    return "sil-" + secrets.token_hex(4)


class SilenceService:
    """Create, list, expire and match silences (Redis ones plus the read-only ones from responder.yaml).

    The HTTP API, the Slack commands and the evaluator all go through this; all Redis access is in
    SilenceStore. Times come from the app's clock.
    """

    def __init__(self, store: SilenceStore, clock: Clock, metrics: Metrics | None = None,
                 configured: Iterable[ConfiguredSilence] = ()) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.configured = {c.id: c.to_silence() for c in configured}

    def _ttl(self, silence: Silence) -> timedelta | None:
        """How long Redis keeps the silence and its hits: until RETENTION after its end."""
        if silence.ends_at is None:
            return None
        return max(silence.ends_at + RETENTION - self.clock.now(), timedelta(seconds=1))

    # -- people's side (API, Slack) --

    async def create(self, spec: SilenceSpec | Mapping[str, Any], created_by: str) -> Silence:
        """Validate and store a silence. Raises SilenceError (with the field at fault) for a bad request."""
        if not isinstance(spec, SilenceSpec):
            try:
                spec = SilenceSpec.model_validate(spec)
            except ValidationError as exc:
                error = exc.errors(include_url=False)[0]
                field = ".".join(str(p) for p in error["loc"]) or None
                message = "unknown field" if error["type"] == "extra_forbidden" else str(error["msg"])
                raise SilenceError(f"{field}: {message.removeprefix('Value error, ')}" if field else message,
                                   field) from None
        now = self.clock.now()
        starts = (spec.starts_at or now).astimezone(UTC)
        if spec.ends_at is not None and spec.duration is not None:
            raise SilenceError("give ends_at or duration, not both", "duration")
        ends = spec.ends_at.astimezone(UTC) if spec.ends_at is not None else (
            starts + spec.duration if spec.duration is not None else None)
        if ends is None and spec.recurrence is None:
            raise SilenceError("give ends_at or duration (or a weekly recurrence)", "ends_at")
        if ends is not None and ends <= starts:
            raise SilenceError("ends_at must be after starts_at", "ends_at")
        if ends is not None and ends <= now:
            raise SilenceError("ends_at is in the past", "ends_at")
        for _ in range(5):
            silence = Silence(id=new_silence_id(), matchers=spec.matchers, starts_at=starts, ends_at=ends,
                              recurrence=spec.recurrence, comment=spec.comment, created_by=created_by,
                              created_at=now)
            if silence.state(now) == "expired":
                raise SilenceError("the weekly recurrence has no window before ends_at", "recurrence")
            if await self.store.add(silence, self._ttl(silence)):
                log.info("silence created", silence_id=silence.id, matchers=format_matchers(silence.matchers),
                         starts_at=starts.isoformat(), ends_at=ends.isoformat() if ends else None, actor=created_by)
                return silence
        raise RuntimeError("could not allocate a silence id")

    async def silence_for(self, matchers: str | Match, duration: str | timedelta, reason: str,
                          created_by: str) -> Silence:
        """Slack's `/incident silence <matchers> <duration> [reason]`, starting now."""
        try:
            span = parse_duration(duration)
        except ValueError as exc:
            raise SilenceError(str(exc), "duration") from None
        match = parse_matchers(matchers) if isinstance(matchers, str) else matchers
        return await self.create({"matchers": match, "duration": span, "comment": reason}, created_by)

    async def get(self, silence_id: str) -> Silence | None:
        return self.configured.get(silence_id) or await self.store.get(silence_id)

    async def list_silences(self, states: Collection[str] = ("active", "scheduled")) -> list[Silence]:
        """Silences in the given states (active, scheduled, expired), soonest-ending first."""
        now = self.clock.now()
        await self.store.prune(now - RETENTION)
        stored = await self.store.in_effect(now - RETENTION)
        found = [s for s in [*self.configured.values(), *stored] if s.state(now) in states]
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(found, key=lambda s: (s.state(now) != "active", s.active_until(now) or s.ends_at or far, s.id))

    def view(self, silence: Silence, hits: int | None = None) -> dict[str, Any]:
        """The JSON shape the API returns (and Slack can render)."""
        now = self.clock.now()
        until = silence.active_until(now)
        upcoming = silence.next_start(now)
        out = {**silence.to_json(), "state": silence.state(now), "matchers_text": format_matchers(silence.matchers),
               "active_until": _iso(until), "next_start": _iso(upcoming)}
        if hits is not None:
            out["suppressed"] = hits
        return out

    async def expire(self, silence_id: str, actor: str) -> Silence:
        """End a silence now (kept for RETENTION, visible as expired). Unknown id: SilenceNotFound."""
        if silence_id in self.configured:
            raise SilenceReadOnly(f"silence {silence_id!r} is defined in responder.yaml: remove it there", "id")
        silence = await self.store.get(silence_id)
        if silence is None:
            raise SilenceNotFound(silence_id)
        now = self.clock.now()
        if silence.state(now) == "expired":
            return silence
        ended = silence.model_copy(update={"ends_at": now, "starts_at": min(silence.starts_at, now),
                                           "expired_by": actor})
        await self.store.save(ended, self._ttl(ended))
        await self.store.recheck_now(silence_id, to_ms(now))  # series it held back are looked at on the next tick
        log.info("silence expired", silence_id=silence_id, actor=actor)
        return ended

    async def hits(self, silence_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent firings this silence suppressed (newest first)."""
        return await self.store.hits(silence_id, limit)

    async def hit_counts(self, silence_ids: list[str]) -> dict[str, int]:
        return await self.store.hit_counts(silence_ids)

    async def active(self) -> list[Silence]:
        now = self.clock.now()
        stored = await self.store.in_effect(now)
        return [s for s in [*self.configured.values(), *stored] if s.active_at(now)]

    async def match(self, event: Event) -> Silence | None:
        """The active silence that matches `event`, if any."""
        return await self.match_fields(event.field)

    async def match_fields(self, lookup: Callable[[str], Any]) -> Silence | None:
        for silence in await self.active():
            if silence.matches(lookup):
                return silence
        return None

    # -- the evaluator's side --

    async def check(self, rule: Rule, group: Mapping[str, str], sample: Event | None) -> Silence | None:
        """The silence that holds back this rule group's firing: tested on the event (or, when a timer fired
        without one, on what the group and the rule say)."""
        return await self.match_fields(sample.field if sample is not None else _group_lookup(rule, group))

    async def suppressed(self, silence: Silence, rule: Rule, key: str, group: dict[str, str],
                         sample: Event | None) -> None:
        """Record a silenced firing: a hit on the silence, the metric, a log line, and the suppressed mark."""
        now = self.clock.now()
        hit = {"at": now.isoformat(), "rule_id": rule.id, "key": key,
               "event_id": sample.id if sample else None, "source": sample.source if sample else None,
               "name": sample.name if sample else None, "service": sample.service if sample else group.get("service"),
               "status": sample.status.value if sample else None, "summary": sample.summary if sample else ""}
        await self.store.add_hit(silence.id, hit, self._ttl(silence), HITS_KEPT)
        until = silence.active_until(now) or now
        marker = Suppressed(key, rule.id, silence.id, dict(group), sample.model_dump(mode="json") if sample else None)
        await self.store.mark(key, marker, to_ms(until))
        if self.metrics is not None:
            self.metrics.events_silenced.labels(rule=rule.id).inc()
        log.info("rule firing silenced: no incident, no playbook", rule_id=rule.id, key=key, silence_id=silence.id,
                 event_id=sample.id if sample else None, active_until=until.isoformat())

    async def was_suppressed(self, key: str) -> bool:
        return await self.store.marker(key) is not None

    async def forget(self, key: str) -> None:
        await self.store.unmark(key)

    async def due(self) -> list[Suppressed]:
        """Suppressed groups whose silence has ended (claimed: each is handed to one replica)."""
        return await self.store.due_markers(to_ms(self.clock.now()))

