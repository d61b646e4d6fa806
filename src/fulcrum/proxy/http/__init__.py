"""The layer-7 data plane: an HTTP/1.1 reverse proxy (mode = "http").

node.py asks `http_protocol_factory(ctx)` for the protocol factory of a listener.

`make compiled` may have built the hot modules with mypyc beside their sources (optional,
issue 10); Python then imports the build, not the .py. A source edited after the build would
be silently ignored, so a stale build stops the import here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from fulcrum.proxy.context import ServiceContext


def stale_build(directory: Path) -> list[Path]:
    """Sources under `directory` that are newer than the compiled module built from them."""
    stale: list[Path] = []
    for suffix in EXTENSION_SUFFIXES:
        for built in directory.rglob("*" + suffix):
            source = built.with_name(built.name[:-len(suffix)] + ".py")
            if source.exists() and source.stat().st_mtime > built.stat().st_mtime:
                stale.append(source)
    return sorted(stale)


_stale = stale_build(Path(__file__).parent)
if _stale:
    raise ImportError(f"the mypyc build is older than {', '.join(str(s) for s in _stale)}: "
                      "run `make compiled` again, or `make uncompiled`")


def http_protocol_factory(ctx: ServiceContext) -> Callable[[], asyncio.Protocol]:
    from fulcrum.proxy.http.server import HttpConnection
    from fulcrum.proxy.http.service import HttpService

    tls = ctx.config.http.tls
    svc = HttpService(ctx, tls=tls is not None)

    def plain() -> asyncio.Protocol:
        return HttpConnection(svc)

    if tls is None:
        return plain
    from fulcrum.proxy.http.tls import tls_factory

    key = ctx.name + " " + " ".join(str(e) for e in ctx.config.listen)
    return tls_factory(key, plain, tls, ctx.config.http.header_timeout)
