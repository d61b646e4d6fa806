"""Access logs: one line per finished HTTP request or TCP connection, written from the
observation records only (observe.py) — never a tally of their own.

Formats (`[log] access_format`, or a service's `log.access_format`):

- `text`, in the spirit of HAProxy's httplog/tcplog (fields separated by one space, `-` when
  not known; times in milliseconds, -1 for a phase that did not happen):

      http: TIME CLIENT:PORT SERVICE POOL/SERVER Tq/Tc/Tr/Ta STATUS BYTES_IN BYTES_OUT TERM RETRIES ROUTE "METHOD TARGET HTTP/V"
      tcp:  TIME CLIENT:PORT SERVICE POOL/SERVER Tc/Tt BYTES_IN BYTES_OUT TERM

  Tq waiting for the request head, Tc connecting to the server, Tr waiting for the response,
  Ta/Tt total; TERM is the termination reason (observe.py), `-` for a normal end.
- `combined`: Apache's LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-agent}i\\""
  exactly (%b here counts every byte sent to the client); TCP connections, which Apache does
  not log, are written in the text form.
- `json`: one object per line with the observation's fields (durations in seconds).

Destinations (`access`): a file (opened for append, reopened on SIGHUP so logrotate works
without copytruncate; line-buffered: one write per line, so a line is visible at once and none
is lost when a worker process exits with os._exit), `syslog` (RFC 3164 datagrams to `syslog_socket`, /dev/log by default;
a full socket drops lines and counts them rather than stalling the proxy), or `off`.

Sampling (`access_sample`, a fraction): of every 1/fraction observations one is written, by a
counter (deterministic); requests that ended abnormally or with a 5xx are always written."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import fields
from typing import IO, Protocol

from fulcrum.config.model import Config, Logging
from fulcrum.config.types import join_host_port
from fulcrum.observe import Observation

log = logging.getLogger("fulcrum.accesslog")

FACILITIES = {"user": 1, "daemon": 3, **{f"local{i}": 16 + i for i in range(8)}}
SEVERITY_INFO = 6


# -- formats (pure) ----------------------------------------------------------------------

def _ms(seconds: float | None) -> str:
    return "-1" if seconds is None else str(round(seconds * 1000))


class _PerSecond:
    """strftime once per second: a busy service writes thousands of lines in each."""

    def __init__(self, fmt: str, convert: Callable[[float], time.struct_time]) -> None:
        self.fmt, self.convert = fmt, convert
        self.second = -1
        self.text = ""

    def __call__(self, wall: float) -> str:
        second = int(wall)
        if second != self.second:
            self.second, self.text = second, time.strftime(self.fmt, self.convert(second))
        return self.text


_utc_second = _PerSecond("%Y-%m-%dT%H:%M:%S", time.gmtime)
_apache_second = _PerSecond("%d/%b/%Y:%H:%M:%S %z", time.localtime)


def _iso(wall: float) -> str:
    return f"{_utc_second(wall)}.{int(wall * 1000) % 1000:03d}Z"


def _client(obs: Observation) -> str:
    return join_host_port(obs.client, obs.client_port)


def _quote(value: str | None) -> str:
    """Apache's escaping in quoted fields: `"` and `\\` escaped, control bytes as \\xhh."""
    if value is None:
        return "-"
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value  # the common case: nothing to escape
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def format_text(obs: Observation) -> str:
    where = f"{obs.pool or '-'}/{obs.server or '-'}"
    term = obs.termination or "-"
    if obs.kind == "tcp":
        return (f"{_iso(obs.started)} {_client(obs)} {obs.service} {where} "
                f"{_ms(obs.connect)}/{_ms(obs.total)} {obs.bytes_in} {obs.bytes_out} {term}")
    request = f"{obs.method or '-'} {obs.target or '-'} HTTP/{obs.version or '-'}"
    return (f"{_iso(obs.started)} {_client(obs)} {obs.service} {where} "
            f"{_ms(obs.wait_request)}/{_ms(obs.connect)}/{_ms(obs.wait_response)}/{_ms(obs.total)} "
            f"{obs.status or '-'} {obs.bytes_in} {obs.bytes_out} {term} {obs.retries} "
            f"{obs.route or '-'} \"{_quote(request)}\"")


def format_combined(obs: Observation) -> str:
    if obs.kind != "http":
        return format_text(obs)
    stamp = _apache_second(obs.started)
    request = f"{obs.method or '-'} {obs.target or '-'} HTTP/{obs.version or '-'}"
    return (f"{obs.client} - - [{stamp}] \"{_quote(request)}\" {obs.status or '-'} "
            f"{obs.bytes_out or '-'} \"{_quote(obs.referer)}\" \"{_quote(obs.user_agent)}\"")


_FIELDS = tuple(f.name for f in fields(Observation))  # (asdict deep-copies: 50 times slower)


def format_json(obs: Observation) -> str:
    entry: dict[str, object] = {"time": _iso(obs.started)}
    for name in _FIELDS:
        value = getattr(obs, name)
        if value is not None:
            entry[name] = value
    return json.dumps(entry, separators=(",", ":"))


FORMATS: dict[str, Callable[[Observation], str]] = {
    "text": format_text, "combined": format_combined, "json": format_json,
}


class Sampler:
    """Writes every observation at fraction 1; else one in 1/fraction by a counter, plus every
    abnormal end (termination reason or 5xx): those are what an operator looks for."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self._credit = 1.0 - fraction  # the first one is written, then one in 1/fraction

    def keep(self, obs: Observation) -> bool:
        if self.fraction >= 1 or obs.termination or obs.status >= 500:
            return True
        self._credit += self.fraction
        if self._credit >= 1:
            self._credit -= 1
            return True
        return False


# -- outputs (edge) -----------------------------------------------------------------------

class Output(Protocol):
    def write(self, line: str) -> None: ...
    def reopen(self) -> None: ...
    def close(self) -> None: ...


class FileOutput:
    """Appends lines to a file; `reopen` follows a rotation (the old name was moved away)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stream: IO[str] = self._open()
        self.failed = 0

    def _open(self) -> IO[str]:
        return open(self.path, "a", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115

    def write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
        except OSError as err:  # a full disk must not stop the proxy; say so, not per line
            self.failed += 1
            if self.failed == 1:
                log.error("access log %s: write failed: %s", self.path, err)

    def reopen(self) -> None:
        try:
            fresh = self._open()
        except OSError as err:
            log.error("access log %s: cannot reopen (%s); still writing to the old file", self.path, err)
            return
        self.stream.close()
        self.stream, self.failed = fresh, 0

    def close(self) -> None:
        self.stream.close()


class SyslogOutput:
    """RFC 3164 lines as datagrams to the local syslog daemon's socket, never blocking."""

    def __init__(self, path: str, facility: str, tag: str = "fulcrum") -> None:
        self.path = path
        self.priority = FACILITIES[facility] * 8 + SEVERITY_INFO
        self.tag = f"{tag}[{os.getpid()}]"
        self.dropped = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise

    def write(self, line: str) -> None:
        # RFC 3164 §4.1: <PRI>TIMESTAMP HOSTNAME? TAG: MSG; the local daemon adds the host.
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime())
        packet = f"<{self.priority}>{stamp} {self.tag}: {line}".encode("utf-8", "backslashreplace")
        try:
            self.sock.send(packet)
        except BlockingIOError:
            self.dropped += 1  # the daemon is behind: drop rather than stall the proxy
        except OSError:
            self.reopen()
            try:
                self.sock.send(packet)
            except OSError:
                self.dropped += 1
        if self.dropped and self.dropped % 1000 == 1:
            log.warning("access log to syslog %s: %d line(s) dropped so far (socket full or gone)",
                        self.path, self.dropped)

    def reopen(self) -> None:
        try:
            self.sock.close()
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.setblocking(False)
            self.sock.connect(self.path)
        except OSError:
            pass  # retried at the next line

    def close(self) -> None:
        self.sock.close()


# -- the sink the observer calls --------------------------------------------------------

class Writer:
    def __init__(self, fmt: str, output: Output, sample: float) -> None:
        self.format = FORMATS[fmt]
        self.output = output
        self.sampler = Sampler(sample)

    def __call__(self, obs: Observation) -> None:
        if self.sampler.keep(obs):
            self.output.write(self.format(obs))


class AccessLogs:
    """The observer sink for a whole configuration: a writer per service (or none)."""

    def __init__(self, writers: dict[str, Writer], outputs: list[Output]) -> None:
        self.writers = writers
        self.outputs = outputs

    def __call__(self, obs: Observation) -> None:
        writer = self.writers.get(obs.service)
        if writer is not None:
            writer(obs)

    def __bool__(self) -> bool:
        return bool(self.writers)

    def reopen(self) -> None:
        for output in self.outputs:
            output.reopen()

    def close(self) -> None:
        for output in self.outputs:
            output.close()


def open_access_logs(config: Config) -> AccessLogs:
    """Open every destination `config` names (a file opened once however many services
    write to it). Raises OSError (with `.filename`) when one cannot be opened; those opened
    before are closed first."""
    outputs: dict[str, Output] = {}
    writers: dict[str, Writer] = {}
    settings: Logging = config.log
    try:
        for name, service in config.services.items():
            own = service.log
            target = (own.access if own and own.access else None) or settings.access
            if target == "off":
                continue
            fmt = (own.access_format if own and own.access_format else None) or settings.access_format
            sample = (own.access_sample if own and own.access_sample else None) or settings.access_sample
            output = outputs.get(target)
            if output is None:
                if target == "syslog":
                    output = _open_syslog(settings)
                else:
                    output = FileOutput(target)
                outputs[target] = output
            writers[name] = Writer(fmt, output, sample)
    except OSError:
        for output in outputs.values():
            output.close()
        raise
    return AccessLogs(writers, list(outputs.values()))


def _open_syslog(settings: Logging) -> SyslogOutput:
    try:
        return SyslogOutput(settings.syslog_socket, settings.syslog_facility)
    except OSError as err:
        err.filename = settings.syslog_socket
        raise
