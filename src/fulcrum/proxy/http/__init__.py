"""The layer-7 data plane: an HTTP/1.1 reverse proxy (mode = "http").

node.py asks `http_protocol_factory(ctx)` for the protocol factory of a listener."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fulcrum.proxy.context import ServiceContext


def http_protocol_factory(ctx: ServiceContext) -> Callable[[], asyncio.Protocol]:
    from fulcrum.proxy.http.server import HttpConnection
    from fulcrum.proxy.http.service import HttpService

    if ctx.config.http.tls is not None:
        raise NotImplementedError("http.tls: TLS listeners are not built yet")
    svc = HttpService(ctx)
    return lambda: HttpConnection(svc)
