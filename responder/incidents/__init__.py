"""Incidents: the model, the transition table and the service that applies it."""
