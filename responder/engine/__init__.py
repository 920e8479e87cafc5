"""Rules: models, evaluation against series state and windows, the stream consumer and the tick."""
