"""Structured logging: `key=value` text lines or one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
import time

from fulcrum.config.model import Logging


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


TEXT_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def setup_logging(settings: Logging, debug: bool = False) -> None:
    handler: logging.Handler
    if settings.file:
        handler = logging.FileHandler(settings.file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger("fulcrum")
    root.handlers[:] = [handler]
    root.setLevel("DEBUG" if debug else settings.level.upper())
    root.propagate = False
