"""responder: an event-driven incident responder."""

__version__ = "0.1.0"
