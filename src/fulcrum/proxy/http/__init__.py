"""The layer-7 data plane: an HTTP/1.1 reverse proxy (mode = "http").

node.py asks `http_protocol_factory(ctx)` for the protocol factory of a listener."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fulcrum.proxy.context import ServiceContext


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
