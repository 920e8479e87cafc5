"""Scheduled probes: HTTP, TCP, Redis queue depth, TLS expiry and DNS checks whose results are events.

model.py      the YAML shape of probes/*.yaml (ProbesFile, Probe and one block per kind)
checks.py     run one check once: CheckResult(ok, value, latency, reason)
service.py    ProbeService: claim a slot, run the check, record the result, append the event
scheduler.py  ProbeScheduler: APScheduler 3.x jobs on every replica, reloadable
reload.py     re-read the probe files (SIGHUP in `responder run`)
"""
