"""The `approval` step: ask people in Slack, wait durably for Approve / Deny, go on or take on_failure.

    - name: approve rollback
      action: approval
      with:
        text: "Roll back {{ incident.service }}?"
        approvers: [S0SRE0001, U0DANA001]   # user ids (U…) and user group ids (S…); empty: chatops allow.approve
        timeout: 30m
        on_timeout: deny                    # or approve
        channel: C0INC0001                  # default: the incident message's thread, else providers.slack.channel

The runner posts the question with Approve / Deny buttons (through the Slack provider), records the step as
`waiting` with its deadline, and waits: a click writes the decision to Redis, and the run (on whichever
replica holds it, after a restart too) picks it up. Approved: the step is ok. Denied or timed out with
`on_timeout: deny`: the step failed, so its on_failure steps run.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator

from responder.config.base import Duration, StrictModel

__all__ = ["APPROVAL", "ApprovalParams"]

#: the action's name in playbooks (a built-in verb)
APPROVAL = "approval"

_APPROVER = re.compile(r"^[UWS][A-Z0-9]{2,}$")


class ApprovalParams(StrictModel):
    text: str = Field(default="", description="the question (mrkdwn; &, < and > are shown as written); default: "
                                              "'Approve the next steps of this playbook run?'")
    approvers: list[str] = Field(default_factory=list,
                                 description="Slack user ids (U…/W…) and user group ids (S…) who may decide; "
                                             "empty: whoever chatops.slack.allow.approve allows")
    timeout: Duration = Field(default=timedelta(minutes=30), description="how long to wait for a decision")
    on_timeout: Literal["deny", "approve"] = Field(default="deny", description="the decision when nobody decided")
    channel: str | None = Field(default=None, description="channel id or #name; default: the incident message's "
                                                          "thread, else providers.slack.channel")

    @field_validator("approvers")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _APPROVER.match(item):
                raise ValueError(f"{item!r} is not a Slack user id (U…) or user group id (S…)")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=10) <= value <= timedelta(days=7):
            raise ValueError("timeout must be between 10s and 7d")
        return value
