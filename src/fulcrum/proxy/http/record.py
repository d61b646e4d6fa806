"""The one Observation of a finished HTTP request (observe.py): what access logs, metrics and
the status table are fed from. Built once per request, when the core ends its exchange."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fulcrum.observe import REJECTED, TIMEOUT, Observation, Observer

if TYPE_CHECKING:
    from fulcrum.proxy.http.core.connection import ClientCore
    from fulcrum.proxy.http.exchange import Exchange


def observe(observer: Observer, service: str, core: ClientCore, ex: Exchange | None, now: float) -> None:
    client, port = core.client_addr
    if ex is None:  # refused before a request began (a PROXY header, a stalled first byte)
        status = core.error.status if core.error is not None else 0
        observer.record(Observation(kind="http", service=service, client=client, client_port=port,
                                    status=status, termination=TIMEOUT if status == 408 else REJECTED))
        return
    pool = ex.pool
    if not observer.sinks:  # only the totals read it: they are counted without a record
        observer.tally(service, pool.name if pool is not None else None, ex.server_key, True, ex.status,
                       ex.head_in + ex.body_in, ex.bytes_out, ex.termination)
        return
    user_agent = referer = None
    if observer.wants_client:  # only a sink prints these: not looked up otherwise
        for name, value in ex.headers:
            lower = name.lower()
            if lower == b"user-agent":
                user_agent = value.decode("latin-1")
            elif lower == b"referer":
                referer = value.decode("latin-1")
    wait_response = ex.t_response - ex.t_sent if ex.t_response and ex.t_sent else None
    observer.record(Observation(
        kind="http", service=service, client=client, client_port=port,
        pool=pool.name if pool is not None else None, server=ex.server_key,
        route=ex.rule.describe() if ex.rule is not None else None,
        method=ex.method.decode("latin-1") if ex.method else None,
        target=ex.target.decode("latin-1") if ex.target else None,
        version=ex.version.decode() if ex.method else None,
        status=ex.status, bytes_in=ex.head_in + ex.body_in, bytes_out=ex.bytes_out,
        wait_request=ex.wait_request, connect=ex.connect_time, wait_response=wait_response,
        total=now - ex.started, retries=max(0, ex.attempts - 1),
        termination=ex.termination, user_agent=user_agent, referer=referer))
