"""Local stand-ins for the vendors the bundled runbook talks to: they record what they receive."""
