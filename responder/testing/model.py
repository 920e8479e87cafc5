"""The pipeline test file (`*_test.yaml`): timed inputs and the expected state of rules and incidents.

    tests:
      - name: Sentry error rate above 5% rolls the API back
        inputs:
          - at: 0s
            webhook: {source: sentry, headers: {Sentry-Hook-Resource: metric_alert}, file: payloads/critical.json}
          - at: 30s
            probe: {id: api-health, status: failing, value: 503}
            every: 30s                 # repeated until `until` (inclusive)
            until: 6m
          - at: 10m
            event: {source: grafana, name: HighLatency, status: firing, service: api, value: 2.5}
        expect:
          - at: 0s
            rules: [{rule: api-error-rate, group: {service: api}, state: firing}]
            incidents:
              - rule: api-error-rate
                status: open
                steps: [{step: rollback, action: railway.rollback, with: {service: api}}]

Every test runs on a fresh pipeline whose clock starts at `start` (default 2026-01-01T00:00:00Z); `at` is an
offset from it. An expectation compares only the fields it names; lists (incidents, an incident's steps)
must match in length and order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field, model_validator

from responder.config.base import Duration, StrictModel
from responder.events import EventStatus, Severity

__all__ = [
    "DEFAULT_START",
    "EventInput",
    "Expectation",
    "IncidentExpectation",
    "Input",
    "ProbeInput",
    "RuleExpectation",
    "StepExpectation",
    "TestCase",
    "TestFile",
    "WebhookInput",
]

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


class WebhookInput(StrictModel):
    """A vendor's webhook delivery, turned into events by that vendor's adapter (signatures are not checked)."""

    source: str = Field(description="the adapter: sentry, grafana, alertmanager, uptimerobot, pagerduty")
    file: str | None = Field(default=None, description="the body, from a file (relative to the test file)")
    payload: Any = Field(default=None, description="the body inline: a mapping or list is sent as JSON, a string "
                                                   "as it is")
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Sentry-Hook-Resource: metric_alert")
    content_type: str = "application/json"
    query: dict[str, str] = Field(default_factory=dict, description="query parameters (UptimeRobot's ?service=)")

    @model_validator(mode="after")
    def _one_body(self) -> WebhookInput:
        if (self.file is None) == (self.payload is None):
            raise ValueError("give exactly one of file or payload")
        return self


class EventInput(StrictModel):
    """A normalized event, as the adapters and probes make them (its series is source + name + labels)."""

    source: str
    name: str
    status: EventStatus
    service: str | None = None
    severity: Severity | None = None
    value: float | None = None
    summary: str = ""
    url: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    delivery_id: str | None = Field(default=None, description="the same id twice is one delivery (deduplicated)")


class ProbeInput(StrictModel):
    """A result of a probe from the config's probes: the event gets the probe's service and labels."""

    id: str = Field(description="probe id")
    status: Literal["ok", "failing"]
    value: float | None = Field(default=None, description="latency in ms, a length, days left...")
    summary: str = Field(default="", description="the reason, e.g. 'HTTP 503'")


class Input(StrictModel):
    """Something received at `at`: exactly one of webhook, event or probe; `every` repeats it until `until`."""

    at: Duration = Field(description="offset from the test's start: 0s, 90s, 5m30s")
    every: Duration | None = None
    until: Duration | None = Field(default=None, description="last repetition at or before this offset")
    webhook: WebhookInput | None = None
    event: EventInput | None = None
    probe: ProbeInput | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Input:
        if sum(x is not None for x in (self.webhook, self.event, self.probe)) != 1:
            raise ValueError("give exactly one of webhook, event or probe")
        if (self.every is None) != (self.until is None):
            raise ValueError("every and until go together")
        if self.every is not None and self.every.total_seconds() <= 0:
            raise ValueError("every must be longer than 0s")
        if self.until is not None and self.until < self.at:
            raise ValueError("until is before at")
        return self


class RuleExpectation(StrictModel):
    """The state of one rule group; without `group`, of the rule as a whole (its most advanced group)."""

    rule: str
    group: dict[str, str] | None = Field(default=None, description="the group_by values, e.g. {service: api}")
    state: Literal["inactive", "pending", "firing"]


class StepExpectation(StrictModel):
    """One step a playbook run recorded (dry-run: what would be sent)."""

    step: str | None = None
    action: str | None = None
    status: Literal["dry-run", "skipped", "failed", "ok"] | None = Field(
        default=None, description="dry-run: would be sent; skipped: its `when` was false")
    with_: dict[str, Any] | None = Field(default=None, alias="with", description="the rendered parameters "
                                                                                 "(only the keys given)")
    phase: Literal["main", "resolve", "manual"] | None = Field(default=None, description="main: the rule fired; "
                                                                                        "resolve: on_resolve")
    playbook: str | None = None
    on_failure_of: str | None = Field(default=None, description="the step whose on_failure branch this one is in")


class IncidentExpectation(StrictModel):
    """One incident (the list is every incident opened so far, in order)."""

    id: str | None = None
    rule: str | None = None
    title: str | None = None
    severity: Severity | None = None
    status: Literal["open", "resolved"] | None = None
    state: Literal["triggered", "acknowledged", "mitigating", "resolved"] | None = None
    service: str | None = None
    group: dict[str, str] | None = None
    playbook: str | None = None
    events: int | None = Field(default=None, description="events recorded on the incident")
    value: float | None = None
    resolved_by: str | None = None
    steps: list[StepExpectation] | None = Field(default=None, description="every step its runs recorded, in order")


class Expectation(StrictModel):
    """What must be true at `at` (after the inputs at that instant and the timers due by then)."""

    at: Duration
    rules: list[RuleExpectation] | None = None
    incidents: list[IncidentExpectation] | None = Field(default=None, description="[] means: no incident")

    @model_validator(mode="after")
    def _something(self) -> Expectation:
        if self.rules is None and self.incidents is None:
            raise ValueError("give rules and/or incidents")
        return self


class TestCase(StrictModel):
    __test__: ClassVar[bool] = False  # not a pytest class

    name: str = Field(min_length=1)
    start: AwareDatetime | None = Field(default=None, description="virtual time of 0s (default 2026-01-01T00:00Z)")
    inputs: list[Input] = Field(default_factory=list)
    expect: list[Expectation] = Field(min_length=1)


class TestFile(StrictModel):
    """A `*_test.yaml` file: `responder test` runs it; the config loader skips it."""

    __test__: ClassVar[bool] = False

    config: str | None = Field(default=None, description="the responder.yaml to test (relative to this file); "
                                                         "default: one next to this file or in its parent folder")
    tests: list[TestCase] = Field(min_length=1)
