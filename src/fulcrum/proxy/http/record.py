"""The one Observation of a finished HTTP request (observe.py): what access logs, metrics and
the status table are fed from. Built once per request, when its exchange is released."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fulcrum.observe import Observation

if TYPE_CHECKING:
    from fulcrum.proxy.http.connection import ConnectionBase
    from fulcrum.proxy.http.exchange import Exchange


def request_bytes_out(conn: ConnectionBase, ex: Exchange) -> int:
    """Bytes written to the client for this exchange's response (interim ones included)."""
    return conn.bytes_out - ex.out_mark if ex.out_mark >= 0 else 0


def observe(conn: ConnectionBase, ex: Exchange, now: float) -> None:
    ctx = conn.ctx
    observer = ctx.observer
    user_agent = referer = None
    if observer.wants_client:  # only a sink prints these: not looked up otherwise
        for name, value in ex.headers:
            lower = name.lower()
            if lower == b"user-agent":
                user_agent = value.decode("latin-1")
            elif lower == b"referer":
                referer = value.decode("latin-1")
    pool = ex.pool
    wait_response = ex.t_response - ex.t_sent if ex.t_response and ex.t_sent else None
    observer.record(Observation(
        kind="http", service=ctx.name, client=conn.client_addr[0], client_port=conn.client_addr[1],
        pool=pool.name if pool is not None else None, server=ex.server_key,
        route=ex.rule.describe() if ex.rule is not None else None,
        method=ex.method.decode("latin-1") if ex.method else None,
        target=ex.target.decode("latin-1") if ex.target else None,
        version=ex.version.decode() if ex.method else None,
        status=ex.resp_status, bytes_in=ex.head_in + ex.body_in,
        bytes_out=request_bytes_out(conn, ex), wait_request=ex.wait_request,
        connect=ex.connect_time, wait_response=wait_response,
        total=now - ex.t_begin if ex.t_begin else 0.0, retries=max(0, ex.attempts - 1),
        termination=ex.termination, user_agent=user_agent, referer=referer))
