"""`responder demo`: a game day in one command, on 127.0.0.1 with no credentials or Redis.

- `world`: the daemon (embedded store), the demo API (`target`), the vendor stand-ins (`standins`), traffic
  and Sentry-style alerts (`sentry`), wired the way production is;
- `config`: the demo's responder.yaml and the bundled runbook with compressed durations;
- `scenario`: the two variants (a bad deploy rolled back; a database outage a rollback cannot fix) and
  the checks of what the stand-ins recorded;
- `story`: the live terminal story; `cli`: the subcommand.
"""
