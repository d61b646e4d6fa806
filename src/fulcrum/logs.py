"""The daemon log: `key=value` text lines or one JSON object per line, to standard error, a
file (reopened on SIGHUP, so logrotate needs no copytruncate) or syslog.

Structured values go in `extra={"fields": {...}}`: the JSON formatter puts them in the
object as they are (a status dump is an object, not a string holding JSON); the text
formatter appends them as `key=<json>`.

`Throttle` keeps per-connection warnings from flooding the log during an outage: the first
of a kind is logged, then at most one per interval with the count of those suppressed."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Callable

from fulcrum.config.model import Logging

ROOT = "fulcrum"

# How this process logs, kept for the reloads that rebuild the handler.
detached = False  # a daemon without a terminal: no log.file means syslog
debug = False  # pen -d: debug whatever log.level says


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{key}={json.dumps(value, sort_keys=True, default=str)}"
                         for key, value in _fields(record).items())
        return f"{line} {extra}" if extra else line


TEXT_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
SYSLOG_FORMAT = "fulcrum[%(process)d]: level=%(levelname)s logger=%(name)s %(message)s"


def build_handler(settings: Logging, syslog: bool = False) -> logging.Handler:
    """A handler for the daemon log, opened now (raises OSError naming the file).
    `syslog`: a detached daemon with no log file logs to syslog, not to /dev/null."""
    handler: logging.Handler
    if settings.file:
        handler = logging.FileHandler(settings.file)
    elif syslog:
        handler = logging.handlers.SysLogHandler(address=settings.syslog_socket,
                                                 facility=logging.handlers.SysLogHandler.LOG_DAEMON)
    else:
        handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    elif isinstance(handler, logging.handlers.SysLogHandler):
        handler.setFormatter(TextFormatter(SYSLOG_FORMAT))
    else:
        handler.setFormatter(TextFormatter(TEXT_FORMAT))
    return handler


def install_handler(settings: Logging, handler: logging.Handler, debug: bool = False) -> None:
    """Make `handler` the daemon log's only handler (closing the one it replaces)."""
    root = logging.getLogger(ROOT)
    old = list(root.handlers)
    root.handlers[:] = [handler]
    root.setLevel("DEBUG" if debug else settings.level.upper())
    root.propagate = False
    for previous in old:
        if previous is not handler:
            previous.close()


DETACHED_ENV = "FULCRUM_DETACHED"  # set by a daemon, so the processes it spawns log to syslog too


def setup_logging(settings: Logging, debug: bool = False, syslog: bool = False) -> None:
    globals()["debug"] = debug
    if os.environ.get(DETACHED_ENV) == "1":  # a VRRP engine or admin process of a daemon
        globals()["detached"] = syslog = True
    try:
        handler = build_handler(settings, syslog=syslog)
    except OSError as err:
        # the log file cannot be opened: say so where the operator is looking
        handler = build_handler(settings.model_copy(update={"file": None}))
        install_handler(settings, handler, debug)
        logging.getLogger(ROOT).error("log.file %s cannot be opened (%s); logging to standard error",
                                      settings.file, err.strerror or err)
        return
    install_handler(settings, handler, debug)


def reopen_log_file() -> None:
    """SIGHUP: a rotated daemon log file is reopened under its name."""
    for handler in logging.getLogger(ROOT).handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.close()
                handler.stream = handler._open()
            except OSError as err:
                sys.stderr.write(f"fulcrum: cannot reopen {handler.baseFilename}: {err}\n")
            finally:
                handler.release()


class Throttle:
    """Per-kind rate limit for warnings caused by clients or servers (one per connection
    during an outage would flood the log). The first of a kind is logged at once; later ones
    at most once per `interval` seconds, saying how many were suppressed in between."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, logger: logging.Logger, level: int, kind: str, msg: str, *args: object) -> bool:
        """Log `msg % args` unless `kind` was logged less than `interval` ago. True if logged."""
        now = self.clock()
        if now < self._next.get(kind, float("-inf")):
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        suppressed = self._suppressed.pop(kind, 0)
        self._next[kind] = now + self.interval
        if suppressed:
            logger.log(level, msg + " (%d similar message(s) suppressed in the last %gs)",
                       *args, suppressed, self.interval)
        else:
            logger.log(level, msg, *args)
        return True


throttle = Throttle()  # the process's one throttle for data-plane warnings
