"""Playbooks: models, templating and the durable runner."""
