"""Event: the one normalized shape every webhook and probe result becomes (a leaf module)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Event", "EventStatus", "Severity", "fingerprint", "new_event_id"]


class EventStatus(StrEnum):
    """What the source says about its series. firing/failing are problems; resolved/ok are not."""

    FIRING = "firing"
    RESOLVED = "resolved"
    FAILING = "failing"  # probe results
    OK = "ok"
    INFO = "info"  # a fact that is neither a problem nor a recovery (e.g. an escalation)

    @property
    def is_problem(self) -> bool:
        return self in (EventStatus.FIRING, EventStatus.FAILING)

    @property
    def is_recovery(self) -> bool:
        return self in (EventStatus.RESOLVED, EventStatus.OK)


class Severity(StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @classmethod
    def parse(cls, raw: object, default: Severity | None = None) -> Severity | None:
        """Map the many spellings vendors use (P1, page, fatal, high...) onto four levels."""
        if raw is None:
            return default
        text = str(raw).strip().lower()
        aliases = {
            "critical": cls.CRITICAL, "fatal": cls.CRITICAL, "page": cls.CRITICAL, "p1": cls.CRITICAL,
            "high": cls.ERROR, "error": cls.ERROR, "major": cls.ERROR, "p2": cls.ERROR,
            "warning": cls.WARNING, "warn": cls.WARNING, "medium": cls.WARNING, "minor": cls.WARNING,
            "p3": cls.WARNING, "info": cls.INFO, "low": cls.INFO, "debug": cls.INFO, "p4": cls.INFO,
            "p5": cls.INFO, "none": cls.INFO,
        }
        return aliases.get(text, default)


def new_event_id() -> str:
    return "ev_" + uuid.uuid4().hex[:24]


def fingerprint(source: str, name: str, labels: dict[str, str]) -> str:
    """Identity of a series: the same source, name and identifying labels give the same value."""
    # source \0 name (\0 key=value)* in key order, hashed in one call
    text = "\0".join([source, name, *(f"{key}={labels[key]}" for key in sorted(labels))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Event(BaseModel):
    """A normalized observation: one alert state change, one probe result."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_event_id, description="responder's id for this event")
    source: str = Field(description="where it came from: sentry, grafana, uptimerobot, alertmanager, probe, ...")
    name: str = Field(description="what it is about: alert rule, monitor or probe name")
    service: str | None = Field(default=None, description="the affected service, when known")
    status: EventStatus
    severity: Severity | None = None
    value: float | None = Field(default=None, description="the measured number, when the payload carries one")
    summary: str = ""
    url: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    fingerprint: str = Field(description="identity of the series this event belongs to")
    occurred_at: datetime
    received_at: datetime
    delivery_id: str = Field(description="natural key of this delivery; a redelivery carries the same one")

    def field(self, path: str) -> Any:
        """Read a dotted field as rules address it: source, name, service, status, value, labels.x."""
        if path.startswith("labels."):
            return self.labels.get(path[7:])
        if path.startswith("annotations."):
            return self.annotations.get(path[12:])
        if path in ("source", "name", "service", "value", "summary"):
            return getattr(self, path)
        if path == "status":
            return self.status.value
        if path == "severity":
            return self.severity.value if self.severity else None
        return self.labels.get(path)
