"""The node's handle on the kernel plane. The plane blocks (it runs `nft` and `ip`), so
it runs in a worker thread, one call at a time, and the proxy's event loop never waits
for it. Pool states are read on the loop (`pool_views`) and handed over as a snapshot.

Health and `fulcrum ctl` change the runtime pools; `tick` (every POLL seconds) pushes
the servers' states to the kernel when they changed, the way the node reports pools to
the VRRP engine. A server that goes down thus leaves the kernel's maps within
fall x interval + POLL."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from fulcrum.config.model import Config
from fulcrum.kernel.nftables import NftError
from fulcrum.kernel.plane import NftPlane, Views, pool_views, wants_kernel

log = logging.getLogger("fulcrum.kernel")

POLL = 0.1  # seconds between looks at the pools' states
RESOLVE_RETRY = 2.0  # seconds between attempts to learn a silent dsr server's MAC


class KernelPart:
    def __init__(self) -> None:
        self.plane: NftPlane | None = None
        self.config: Config | None = None
        self._applied: Views | None = None
        self._lock = asyncio.Lock()
        self._retry_at = 0.0

    async def apply(self, config: Config, pools: Mapping[str, Any]) -> None:
        """Start, update (reload) or stop the plane to match `config`."""
        async with self._lock:
            views = pool_views(config, pools)
            if not wants_kernel(config):
                if self.plane is not None:
                    await asyncio.to_thread(self.plane.stop)
                    self.plane = None
                self.config = config
                return
            if self.plane is None:
                plane = NftPlane(config)
                await asyncio.to_thread(plane.start, config, views)
                self.plane = plane
            else:
                try:
                    await asyncio.to_thread(self.plane.apply, config, views)
                except NftError as err:
                    # the kernel keeps the previous rules (the transaction was refused whole)
                    log.error("kernel plane: reload not applied, the previous rules stay: %s", err)
                    return
            self.config, self._applied = config, views

    async def tick(self, pools: Mapping[str, Any]) -> None:
        """Push the servers' states if they changed since the last push."""
        plane, config = self.plane, self.config
        if plane is None or config is None or self._lock.locked():
            return
        views = pool_views(config, pools)
        retry = bool(plane.unresolved) and time.monotonic() >= self._retry_at
        if views == self._applied and not retry:
            return
        async with self._lock:
            if retry:
                self._retry_at = time.monotonic() + RESOLVE_RETRY
            try:
                await asyncio.to_thread(plane.apply, config, views)
            except NftError as err:
                log.error("kernel plane: could not apply the servers' states: %s", err)
                return
            self._applied = views

    async def stop(self) -> None:
        async with self._lock:
            if self.plane is not None:
                try:
                    await asyncio.to_thread(self.plane.stop)
                except NftError as err:
                    log.error("kernel plane: %s", err)
                self.plane = None

    def stats(self) -> list[dict[str, Any]]:
        return self.plane.stats() if self.plane is not None else []
