"""Event loop choice: uvloop when importable (fast path), stdlib asyncio otherwise.

FULCRUM_LOOP=asyncio forces the fallback, so tests can run on both."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    if os.environ.get("FULCRUM_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def loop_name() -> str:
    factory = loop_factory()
    return "uvloop" if factory is not asyncio.new_event_loop else "asyncio"
