"""Structured JSON logs. Text to be spoken is personal data: never pass it to a logger."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict


class LogSettings(BaseSettings):
    """How a process logs; both services' settings classes inherit these (their prefixes)."""

    model_config = SettingsConfigDict(extra="ignore", use_attribute_docstrings=True)

    log_level: str = "info"
    """Log level: debug, info, warning or error."""
    log_json: bool = True
    """One JSON object per log line; false gives plain text for a terminal."""


# uvicorn adds color_message, a duplicate of msg with terminal escapes.
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={...}` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
