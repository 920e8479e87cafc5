"""ChatOps: Slack slash commands (`/incident ...`), buttons, approvals and the audit log.

    config.py        chatops.slack in responder.yaml: the command, who may do what, rollback/restart per service
    slack_routes.py  POST /slack/commands, POST /slack/interactions (signed), GET /api/v1/audit
    commands.py      parsing a command's text (pure)
    service.py       ChatOps: runs commands within Slack's 3 s, answers through response_url, audits
    interactions.py  button clicks
    changes.py       rollback / restart: plan, Confirm / Cancel, one run through the PlaybookRunner
    remediation.py   the plan, the budget check, the chatops.* playbooks
    approvals.py     the runner's ApprovalGate (the `approval` step)
    authz.py         chatops.slack.allow, with user group membership from Slack
    messages.py      Block Kit
"""
