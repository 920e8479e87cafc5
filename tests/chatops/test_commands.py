"""/incident subcommands end to end: parsing and usage, incident changes as "slack:<user>", authorization from
chatops.slack.allow (users, user groups through usergroups.users.list, channels), the audit log, and the
3-second rule: a slow command is acknowledged at once and its answer arrives at the response_url."""

from __future__ import annotations

import time
from typing import Any

import pytest

from responder.chatops.commands import parse
from responder.config.loader import load_config
from responder.errors import ConfigError
from tests.chatops.conftest import BOB, CONFIG, DANA, ERIN, INCIDENTS, OPS, SRE, Chat
from tests.conftest import write_config


async def test_help_and_usage(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    answer, _ = await chat.command("")
    assert answer["response_type"] == "ephemeral" and "`/incident rollback <service> [deployment]`" in answer["text"]
    answer, _ = await chat.command("frobnicate 12")
    assert answer["text"].startswith("Unknown subcommand `frobnicate`.") and "`/incident ack <id>`" in answer["text"]
    answer, _ = await chat.command("ack")
    assert answer["text"] == "Usage: `/incident ack <id>` — acknowledge an incident"
    answer, _ = await chat.command("rollback api one two")
    assert answer["text"].startswith("Usage: `/incident rollback <service> [deployment]`")
    entries = await chat.audit()
    assert [e["outcome"] for e in entries] == ["usage", "usage", "usage", "ok"]
    assert entries[0]["command"] == "/incident rollback api one two" and entries[0]["allowed"] is None


async def test_ack_resolve_note_act_as_the_slack_user(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    incident = await chat.incident()
    answer, _ = await chat.command(f"ack #{incident.id}", user=BOB)
    assert answer["text"].startswith(f":eyes: Acknowledged #{incident.id}")
    answer, _ = await chat.command(f"note {incident.id} deploy v42 looks bad &amp; slow", user=BOB)
    assert answer["text"] == f":memo: Note added to #{incident.id}."
    answer, _ = await chat.command(f"resolve {incident.id} rolled back by hand", user=DANA)
    assert answer["text"].startswith(f":white_check_mark: Resolved #{incident.id}")

    current = await chat.services.incidents.get(incident.id)
    assert current.acknowledged_by == f"slack:{BOB}" and current.resolved_by == f"slack:{DANA}"
    story = [(e.actor, e.text) for e in await chat.timeline(incident.id)]
    assert (f"slack:{BOB}", "acknowledged") in story
    assert (f"slack:{BOB}", "deploy v42 looks bad & slow") in story
    assert (f"slack:{DANA}", "resolved: rolled back by hand") in story
    entries = await chat.audit(incident=incident.id)
    assert [(e["user_id"], e["outcome"]) for e in entries] == [(DANA, "ok"), (BOB, "ok"), (BOB, "ok")]


async def test_unknown_incident_and_illegal_change(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    answer, _ = await chat.command("ack 999")
    assert answer["text"] == ":warning: There is no incident #999."
    incident = await chat.incident()
    await chat.services.incidents.resolve(incident.id, "user:alice")
    answer, _ = await chat.command(f"ack {incident.id}")
    assert answer["text"] == f":warning: #{incident.id}: cannot acknowledge an incident that is resolved"
    assert [e["outcome"] for e in await chat.audit()] == ["failed", "failed"]


async def test_list_and_status(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    answer, _ = await chat.command("list")
    assert answer["text"] == ":white_check_mark: No open incidents."
    first = await chat.incident("API error rate above 5%")
    second = await chat.incident("Checkout <!channel> latency", service="checkout")
    answer, _ = await chat.command("list", user=BOB)
    assert answer["text"].startswith("*2 open incidents*")
    assert f"*#{second.id}* Checkout &lt;!channel&gt; latency" in answer["text"]  # escaped: no @channel from alerts
    assert answer["text"].index(f"#{second.id}") < answer["text"].index(f"#{first.id}")
    answer, _ = await chat.command(f"status {first.id}")
    assert "*State:* :rotating_light: Triggered" in answer["blocks"][0]["text"]["text"]
    assert "rule fired" in answer["blocks"][-1]["elements"][0]["text"]
    answer, _ = await chat.command("status")
    assert answer["text"] == "*2 open incidents* (2 triggered)"
    answer, _ = await chat.command("status 4242")
    assert answer["text"] == ":warning: There is no incident #4242."


@pytest.mark.parametrize(("user", "channel", "allowed"), [(DANA, OPS, True), (ERIN, OPS, True), (BOB, OPS, False),
                                                          ("U0FRED004", OPS, True), ("W0GUEST05", INCIDENTS, False)])
async def test_destructive_commands_need_permission(chat: Chat, make_config: Any, make_app: Any, user: str,
                                                    channel: str, allowed: bool) -> None:
    await chat.start(make_config, make_app)
    incident = await chat.incident()
    answer, _ = await chat.command(f"resolve {incident.id}", user=user, channel=channel)
    current = await chat.services.incidents.get(incident.id)
    [entry] = await chat.audit()
    assert entry["user_id"] == user and entry["channel_id"] == channel and entry["incident_id"] == incident.id
    if allowed:
        assert current.state.value == "resolved" and entry["outcome"] == "ok" and entry["allowed"] is True
        return
    assert current.state.value == "triggered"
    assert answer["text"] == (f":no_entry: you are not allowed to `resolve`: it is limited to <@{DANA}>, "
                              f"<!subteam^{SRE}>")
    assert entry["outcome"] == "refused" and entry["allowed"] is False and "not allowed" in entry["detail"]
    refusals = [e for e in await chat.timeline(incident.id) if e.kind == "chatops"]
    assert [(e.actor, e.text.split(" (")[0]) for e in refusals] == [(f"slack:{user}", f"refused: /incident resolve "
                                                                                       f"{incident.id}")]


async def test_group_members_are_read_once_and_cached(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    for _ in range(3):
        await chat.command("rollback nosuch", user=ERIN)
    assert len(chat.slack.calls(path="/api/usergroups.users.list")) == 1
    assert chat.slack.method_calls("usergroups.users.list")[0]["usergroup"] == SRE
    chat.clock.advance(6 * 60)  # past chatops.slack.group_cache (5m)
    await chat.command("rollback nosuch", user=ERIN)
    assert len(chat.slack.calls(path="/api/usergroups.users.list")) == 2


async def test_a_group_that_cannot_be_read_grants_nothing(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    chat.slack.error_next("usergroups.users.list", "missing_scope")
    answer, _ = await chat.command("rollback api", user=ERIN)
    assert answer["text"].startswith(":no_entry: you are not allowed to `rollback`")
    assert "the members of user group S0SRE0001 could not be read" in answer["text"]
    assert "missing_scope" in answer["text"]


async def test_per_subcommand_rules_and_channels(chat: Chat, make_config: Any, make_app: Any) -> None:
    extra = f"""
      ack: {{channels: [{INCIDENTS}]}}
      list: [{DANA}]
"""
    config = CONFIG.replace(f"      destructive: [{DANA}, {SRE}]\n", f"      destructive: [{DANA}, {SRE}]\n{extra}")
    await chat.start(make_config, make_app, config=config)
    incident = await chat.incident()
    answer, _ = await chat.command(f"ack {incident.id}", user=BOB, channel=OPS)
    assert answer["text"] == f":no_entry: you are not allowed to `ack`: it is limited to <#{INCIDENTS}>"
    answer, _ = await chat.command(f"ack {incident.id}", user=BOB, channel=INCIDENTS)
    assert answer["text"].startswith(":eyes: Acknowledged")
    answer, _ = await chat.command("list", user=BOB)
    assert answer["text"].startswith(":no_entry:")
    answer, _ = await chat.command("status", user=BOB)  # the rest of the read group: everyone (the default)
    assert answer["text"].startswith("*1 open incident*")


async def test_a_slow_command_is_acknowledged_at_once_and_answered_at_the_response_url(
        chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app, extra="    ack_within: 100ms\n")
    chat.railway.stall_next(0.6)  # Railway is slow to list the deployments for the plan
    started = time.monotonic()
    answer, url = await chat.command("rollback api")
    elapsed = time.monotonic() - started
    assert elapsed < 0.5, elapsed  # well inside Slack's 3 s
    assert answer == {"response_type": "ephemeral", "text": ":hourglass_flowing_sand: Working on "
                                                            "`/incident rollback api`…"}
    assert chat.slack.responses_to(url) == []
    await chat.settle()
    [plan] = chat.slack.responses_to(url)
    assert plan["response_type"] == "in_channel"
    assert any(b.get("type") == "actions" and b["elements"][0]["action_id"] == "chatops_confirm"
               for b in plan["blocks"])
    assert chat.rollbacks() == []  # a plan, nothing changed


async def test_a_fast_command_is_answered_inline(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    answer, url = await chat.command("rollback api")
    assert answer["response_type"] == "in_channel" and "blocks" in answer
    await chat.settle()
    assert chat.slack.responses_to(url) == []


async def test_another_command_name_is_pointed_at_the_configuration(chat: Chat, make_config: Any,
                                                                   make_app: Any) -> None:
    await chat.start(make_config, make_app, extra="    command: /responder\n")
    answer, _ = await chat.command("list", command="/incident")
    assert "answers `/responder`" in answer["text"]
    answer, _ = await chat.command("list", command="/responder")
    assert answer["text"] == ":white_check_mark: No open incidents."


async def test_run_starts_a_playbook_for_a_new_incident_and_reports_the_outcome(chat: Chat, make_config: Any,
                                                                               make_app: Any) -> None:
    playbooks = """playbooks:
  - id: warm-cache
    steps:
      - {name: hit, action: http.request, with: {url: "${SINK}/warm/{{ incident.service }}"}}
"""
    await chat.start(make_config, make_app, playbooks=playbooks)
    answer, _ = await chat.command("run nope")
    assert answer["text"] == ":warning: There is no playbook `nope` (known: `warm-cache`)."
    answer, _ = await chat.command("run warm-cache api", user=BOB)
    assert answer["text"].startswith(":no_entry: you are not allowed to `run`")
    answer, url = await chat.command("run warm-cache api")
    assert answer["text"].startswith(":arrow_forward: Started playbook `warm-cache` as incident #")
    await chat.settle()
    assert chat.sink.paths == ["/warm/api"]
    [outcome] = chat.slack.responses_to(url)
    assert outcome["text"].startswith(":white_check_mark: `warm-cache` completed")
    assert ":white_check_mark: `hit` ok" in outcome["blocks"][0]["text"]["text"]
    [incident] = await chat.services.incidents.store.list()
    assert incident.title == "manual run of warm-cache for api by dana" and incident.service == "api"
    assert incident.rule_id == "chatops"


def test_parse_unescapes_and_strips_hashes() -> None:
    assert parse("note #12 a &lt;b&gt; &amp; c").args == ["12", "a <b> & c"]  # type: ignore[union-attr]
    assert parse("  STATUS  ").name == "status"  # type: ignore[union-attr]
    assert parse("silence service=api").text.startswith("Usage:")  # type: ignore[union-attr]


@pytest.mark.parametrize(("snippet", "message"), [
    ("allow: {destructive: [\"@alice\"]}", "'@alice' is not a Slack id"),
    ("allow: {deploy: [everyone]}", "unknown key 'deploy'"),
    ("allow: {read: {users: [S0SRE0001]}}", "'S0SRE0001' is not a user id"),
    ("services: {api: {rollback: {action: railway.rollbak, with: {service: api}}}}",
     "unknown action 'railway.rollbak'"),
    ("services: {api: {rollback: {action: railway.rollback, with: {servce: api}}}}", "`with` does not fit"),
    ("services: {api: {rollback: {action: railway.rollback, with: {service: api}, argument: nope}}}",
     "argument 'nope' is not a parameter of railway.rollback"),
    ("services: {API: {}}", "service name 'API'"),
    ("command: incident", "String should match pattern"),
    ("ack_within: 3s", "at most 2500ms"),
])
def test_config_errors_name_the_line(tmp_path: Any, snippet: str, message: str) -> None:
    path = write_config(tmp_path, {"responder.yaml": f"server: {{}}\nchatops:\n  slack:\n    {snippet}\n"})
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    text = str(caught.value)
    assert "responder.yaml:4" in text and message in text, text


async def test_silences_from_slack(chat: Chat, make_config: Any, make_app: Any) -> None:
    await chat.start(make_config, make_app)
    answer, _ = await chat.command("silence service=api 2h deploy of v42", user=BOB)
    assert answer["text"].startswith(":no_entry: you are not allowed to `silence`")
    answer, _ = await chat.command('silence service=api name=~"error.*" 2h deploy of v42', user=ERIN)
    assert answer["response_type"] == "in_channel" and answer["text"].startswith(":mute: Silenced: `sil-")
    assert "until 2026-01-01 02:00 UTC" in answer["text"] and "(deploy of v42)" in answer["text"]
    [silence] = await chat.services.silences.list_silences()
    assert silence.created_by == f"slack:{ERIN}" and silence.comment == "deploy of v42"
    answer, _ = await chat.command("silences", user=BOB)
    assert silence.id in answer["text"]
    answer, _ = await chat.command("silence service=api soon", user=ERIN)
    assert answer["text"].startswith(":warning:") and "Usage: `/incident silence <matchers> <duration> [reason]`" \
        in answer["text"]
    answer, _ = await chat.command("unsilence sil-nope", user=ERIN)
    assert answer["text"] == ":warning: There is no silence `sil-nope`."
    answer, _ = await chat.command(f"unsilence {silence.id}", user=BOB)
    assert answer["text"].startswith(":no_entry:")
    answer, _ = await chat.command(f"unsilence {silence.id}", user=ERIN)
    assert answer["text"] == f":loud_sound: Silence `{silence.id}` ended."
    assert await chat.services.silences.list_silences() == []
    answer, _ = await chat.command("silences")
    assert answer["text"] == "No active or scheduled silences."
