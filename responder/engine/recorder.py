"""Record every event the rules handled to a JSONL file, for `responder replay`.

`record: {path: events.jsonl}` in responder.yaml (relative to that file). The engine consumer appends one
line per event after the rules handled it and the stream entry was acknowledged: the normalized Event as
JSON, exactly what `responder replay` reads back. Each replica records the events it handled; with several
replicas, concatenate their files (replay orders events by `received_at` and drops repeated delivery ids).

The file is opened, appended to and closed for each event: nothing to close at shutdown, and an external
log rotation (rename, then a new file) is followed at once. A write that fails is logged and counted,
never allowed to stop the pipeline.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from responder.config.base import StrictModel
from responder.events import Event
from responder.logs import get_logger

__all__ = ["EventRecorder", "RecordConfig"]

log = get_logger(__name__)


class RecordConfig(StrictModel):
    """`record:` in responder.yaml."""

    path: str | None = Field(default=None, description="JSONL file each handled event is appended to, relative "
                                                        "to responder.yaml; empty (an unset ${VAR:-}): off")


class EventRecorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0
        self.failed = 0

    @classmethod
    def from_config(cls, config: RecordConfig, base: Path | None) -> EventRecorder | None:
        if not config.path:
            return None
        path = Path(config.path)
        if not path.is_absolute() and base is not None:
            path = base / path
        log.info("recording events", path=str(path))
        return cls(path)

    def write(self, event: Event) -> None:
        try:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(event.model_dump_json() + "\n")
        except OSError as exc:
            self.failed += 1
            if self.failed == 1 or self.failed % 1000 == 0:  # a full disk must not flood the log
                log.warning("event not recorded", path=str(self.path), error=str(exc), failed=self.failed)
            return
        self.written += 1
