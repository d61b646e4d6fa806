"""Responses the proxy writes itself: errors and redirects. Pure."""

from __future__ import annotations

from http import HTTPStatus


def error_response(status: int, close: bool = True, extra: list[tuple[bytes, bytes]] | None = None,
                   head_only: bool = False) -> bytes:
    reason = HTTPStatus(status).phrase.encode()
    body = b"%d %s\n" % (status, reason)
    lines = [b"HTTP/1.1 %d %s" % (status, reason),
             b"Content-Type: text/plain; charset=utf-8",
             b"Content-Length: %d" % len(body),
             b"Cache-Control: no-store"]
    if close:
        lines.append(b"Connection: close")
    for name, value in extra or ():
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head_only else body)


def redirect_response(location: bytes) -> bytes:
    """308 keeps the method and body (RFC 9110 §15.4.9), unlike 301 for POST."""
    return (b"HTTP/1.1 308 Permanent Redirect\r\nLocation: " + location +
            b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
