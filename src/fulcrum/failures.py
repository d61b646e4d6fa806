"""Why a connection to a server failed, in a few lower-case words ("connect refused",
"cannot resolve db1", "TLS error: ..."). Pure and a leaf: the proxy's passive failures
(proxy/tcp.py) and the active health probes (health/probes.py) both name a cause with
it, so the status and the log show one phrase for one cause without the data plane
importing the health plane."""

from __future__ import annotations

import socket
import ssl

import httptools


def describe_error(exc: BaseException, address: str = "") -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connect refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {address}" if address else "cannot resolve host"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, httptools.HttpParserError):
        return "invalid HTTP response"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
