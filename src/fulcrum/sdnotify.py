"""systemd's readiness protocol (sd_notify(3)): one datagram to the socket in $NOTIFY_SOCKET.

A few lines rather than a dependency. Without $NOTIFY_SOCKET (not started by systemd with
Type=notify) every call does nothing. A name starting with '@' is an abstract socket."""

from __future__ import annotations

import os
import socket
import time


def notify(*lines: str) -> bool:
    """Send `READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=...` (one per argument).
    True when a message was sent."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path or not lines:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    message = "\n".join(lines)
    if "RELOADING=1" in lines:
        # systemd ≥ 253 wants the monotonic time with RELOADING=1 (sd_notify(3))
        message += f"\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            sock.sendto(message.encode(), address)
    except OSError:
        return False  # systemd gone or the socket not ours: nothing a node can do about it
    return True
