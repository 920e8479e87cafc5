"""Incident and TimelineEntry."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from responder.events import Severity

__all__ = ["Incident", "IncidentState", "TimelineEntry"]


class IncidentState(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    MITIGATING = "mitigating"  # a playbook is running
    RESOLVED = "resolved"

    @property
    def is_open(self) -> bool:
        return self is not IncidentState.RESOLVED


class TimelineEntry(BaseModel):
    """One line of an incident's story: when, who (rule, playbook step, person, source) and what."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    actor: str  # "rule:api-error-rate", "playbook:rollback-api/rollback", "user:alice", "sentry"
    kind: str  # event | rule | playbook | step | human | state
    text: str
    data: dict[str, Any] = Field(default_factory=dict)


class Incident(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    key: str  # rule id + group values: one open incident per key
    rule_id: str
    title: str
    severity: Severity
    state: IncidentState = IncidentState.TRIGGERED
    service: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    group: dict[str, str] = Field(default_factory=dict)
    playbook: str | None = None
    source: str | None = None
    summary: str = ""
    url: str | None = None
    value: float | None = None
    event_count: int = 1
    first_event_id: str | None = None
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    mitigating_since: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    #: set when a remediation budget refused a step: no more automated changes, people decide
    automation_frozen: bool = False
    frozen_reason: str | None = None

    @field_validator("labels", "group", mode="before")
    @classmethod
    def _empty_mapping(cls, value: Any) -> Any:
        # the store's open script round-trips the document through Lua's cjson, and fakeredis' cjson (the embedded
        # mode) writes an empty object back as [] (Redis' own writes {})
        return {} if value == [] else value
