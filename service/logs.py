"""Logs of every process (API, worker, scheduler): one line per record on stderr, as JSON (the
default: one object per line, with the ``extra={...}`` fields of the call) or as text
(``GREENTRAINER_LOG_FORMAT=text``, what `greentrainer up` shows on a terminal)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["json", "text"]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "color_message",  # uvicorn's ANSI-coloured duplicate of msg
}

# Loggers that say nothing an operator needs at INFO: alembic logs a line per built-in plugin
# when it is first imported, in every process that checks the schema; rouge-score (through absl)
# says "Using default tokenizer." at each evaluation.
QUIET = {"alembic.runtime.plugins": logging.WARNING, "absl": logging.WARNING}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``: the extra fields after the message, those
    that are one value (a job id, a status) the message does not already say; structures
    (Celery's whole task message) are left to the JSON format."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items()
                          if isinstance(v, str | int | float | bool)
                          and str(v) not in record.message)
        line = super().formatMessage(record)
        return f"{line} {extras}" if extras else line


def configure(level: str = "INFO", fmt: LogFormat = "json") -> None:
    """Send every logger of this process (the service's, uvicorn's, Celery's) to stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(quiet)
