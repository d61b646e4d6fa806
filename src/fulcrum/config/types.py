"""Small value types shared by the model: durations, ports, endpoints."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """`500ms`, `2s`, `1m`, `1.5h` or a bare number of seconds -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 500ms, 2s or 1m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration (use e.g. 500ms, 2s, 1m)")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError("must be a duration such as 500ms, 2s or 1m")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    if seconds < 1 or seconds != int(seconds):
        ms = seconds * 1000
        return f"{ms:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


def _check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise ValueError("must be 1..65535")
    return port


Port = Annotated[int, AfterValidator(_check_port)]


def _check_host(host: str) -> str:
    """An IP address (v4 or v6, without brackets) or a DNS name."""
    if not host:
        raise ValueError("must not be empty")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", host) or ".." in host:
        raise ValueError(f"{host!r} is not an IP address or host name")
    return host


Host = Annotated[str, AfterValidator(_check_host)]


def split_bracketed(text: str) -> tuple[str, str]:
    """`[v6]rest` -> (v6, rest): the address inside the brackets and what follows `]`."""
    end = text.find("]")
    if end < 0:
        raise ValueError(f"{text!r}: missing ']' after IPv6 address")
    return text[1:end], text[end + 1:]


def split_host_port(text: str, default_host: str | None = None) -> tuple[str, int]:
    """Split `host:port`, `[v6]:port` or (with a default host) a bare `port`.

    Raises ValueError with a readable reason."""
    text = text.strip()
    if text.startswith("["):
        host, rest = split_bracketed(text)
        if not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected [address]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.isdigit() and default_host is not None:
        host, port_text = default_host, text
    else:
        raise ValueError(f"{text!r}: expected host:port or [ipv6]:port")
    if not port_text.isdigit():
        raise ValueError(f"{text!r}: port {port_text!r} is not a number")
    port = int(port_text)
    _check_port(port)
    return _check_host(host or (default_host or "0.0.0.0")), port


def bracket_host(host: str) -> str:
    """An IPv6 address in brackets (`[2001:db8::1]`), as in a URL authority or `host:port`."""
    return f"[{host}]" if ":" in host else host


def join_host_port(host: str, port: int | str) -> str:
    """`192.0.2.1:80`, `[2001:db8::1]:80`, `example.com:80`: the one `host:port` form."""
    return f"{bracket_host(host)}:{port}"


def is_ipv6(host: str) -> bool:
    return ":" in host
