"""pen's server syntax, also accepted for servers written as strings in TOML.

    host[:port[:soft[:hard[:weight[:prio]]]]]     IPv6 hosts in brackets: [2001:db8::1]:80

soft is pen's `max` (new clients stop going to the server at this many
connections), hard is the limit that even clients stuck to the server by the
client table cannot pass. 0 means unlimited."""

from __future__ import annotations

from typing import Any

from fulcrum.config.types import split_bracketed

FIELDS = ("port", "max_connections", "hard_limit", "weight", "priority")


def parse_server_spec(text: str, default_port: int | None = None) -> dict[str, Any]:
    text = text.strip()
    if not text:
        raise ValueError("empty server")
    if text.startswith("["):
        host, rest = split_bracketed(text)
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':' after ']'")
        parts = rest[1:].split(":") if rest else []
    else:
        host, *parts = text.split(":")
        if len(parts) > len(FIELDS):
            raise ValueError(f"{text!r}: IPv6 servers must be written in brackets, [addr]:port")
    if len(parts) > len(FIELDS):
        raise ValueError(f"{text!r}: too many ':' fields (host:port:soft:hard:weight:prio)")
    spec: dict[str, Any] = {"address": host}
    for name, value in zip(FIELDS, parts, strict=False):
        if value == "":
            continue
        if not value.isdigit():
            raise ValueError(f"{text!r}: {name} {value!r} is not a number")
        spec[name] = int(value)
    if "port" not in spec:
        if default_port is None:
            raise ValueError(f"{text!r}: no port")
        spec["port"] = default_port
    return spec
