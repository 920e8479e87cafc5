"""HTTP API: incidents, status page, health, metrics, and the error middleware."""
