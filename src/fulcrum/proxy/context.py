"""What a listener's protocols need to know about their service, swapped whole on reload.

Connections keep the context they were accepted with, so a reload never changes
the rules under an established connection."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime
from fulcrum.config.model import Service, Timeouts
from fulcrum.observe import Observer
from fulcrum.proxy.resources import GATE


class PassiveHealth(Protocol):
    def passive_failure(self, pool: str, backend: Backend, reason: str) -> None: ...

    def passive_success(self, pool: str, backend: Backend) -> None: ...


@dataclass
class ConnectionCounter:
    """Open client connections against a limit (0 = none). Shared by node and services."""

    limit: int = 0
    current: int = 0

    def full(self) -> bool:
        return bool(self.limit) and self.current >= self.limit


@dataclass
class ServiceContext:
    name: str
    config: Service
    pool: PoolRuntime
    timeouts: Timeouts
    node_connections: ConnectionCounter
    connections: ConnectionCounter
    health: PassiveHealth | None = None
    pools: dict[str, PoolRuntime] = field(default_factory=dict)  # every pool, for http routes
    open_connections: set[object] = field(default_factory=set)  # the client side of each: tcp ClientSide, http HttpConnection
    observer: Observer = field(default_factory=Observer)  # the node's; every finished request/connection goes here

    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)

    def admit(self) -> bool:
        if self.node_connections.full() or self.connections.full():
            return False
        self.node_connections.current += 1
        self.connections.current += 1
        return True

    def release(self) -> None:
        self.node_connections.current -= 1
        self.connections.current -= 1
        GATE.released()  # descriptors freed: accept again if a shortage paused accepting

    def passive_failure(self, backend: Backend, reason: str) -> None:
        if self.health is not None:
            self.health.passive_failure(self.pool.name, backend, reason)

    def passive_success(self, backend: Backend) -> None:
        if self.health is not None:
            self.health.passive_success(self.pool.name, backend)
