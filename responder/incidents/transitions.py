"""The legal incident state changes, as one table, and `next_state()` to apply it."""

from __future__ import annotations

from enum import StrEnum

from responder.incidents.model import IncidentState as S

__all__ = ["TRANSITIONS", "Action", "IllegalTransition", "next_state"]


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    START_MITIGATION = "start_mitigation"  # a playbook run begins
    END_MITIGATION = "end_mitigation"  # the run is over: back to acknowledged or triggered
    RESOLVE = "resolve"


class IllegalTransition(Exception):
    def __init__(self, state: S, action: Action) -> None:
        super().__init__(f"cannot {action.value} an incident that is {state.value}")
        self.state = state
        self.action = action


# (current state, action) -> new state. `None` means: decided by whether the incident was acknowledged.
TRANSITIONS: dict[tuple[S, Action], S | None] = {
    (S.TRIGGERED, Action.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.TRIGGERED, Action.START_MITIGATION): S.MITIGATING,
    (S.TRIGGERED, Action.RESOLVE): S.RESOLVED,
    (S.ACKNOWLEDGED, Action.ACKNOWLEDGE): S.ACKNOWLEDGED,  # idempotent: a second ack is not an error
    (S.ACKNOWLEDGED, Action.START_MITIGATION): S.MITIGATING,
    (S.ACKNOWLEDGED, Action.RESOLVE): S.RESOLVED,
    (S.MITIGATING, Action.ACKNOWLEDGE): S.MITIGATING,  # the ack is recorded; the playbook keeps running
    (S.MITIGATING, Action.END_MITIGATION): None,
    (S.MITIGATING, Action.RESOLVE): S.RESOLVED,
    (S.RESOLVED, Action.RESOLVE): S.RESOLVED,  # idempotent
}


def next_state(state: S, action: Action, *, acknowledged: bool) -> S:
    """The state after `action`, or IllegalTransition."""
    try:
        target = TRANSITIONS[(state, action)]
    except KeyError:
        raise IllegalTransition(state, action) from None
    if target is None:
        return S.ACKNOWLEDGED if acknowledged else S.TRIGGERED
    return target
