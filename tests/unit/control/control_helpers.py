"""A small node for control tests: real PoolRuntime objects, a settable clock, and a
reload that validates and applies like the real node (pools keep live state)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fulcrum.balance.pool import PoolRuntime
from fulcrum.config.load import check_references, load_dict
from fulcrum.config.model import Config
from fulcrum.importers.pen import parse_pen_argv


def make_config(servers: list[str] | None = None, **pool: Any) -> Config:
    return load_dict({
        "services": {"web": {"listen": ["127.0.0.1:8080"], "pool": "web"}},
        "pools": {"web": {"servers": servers or ["127.0.0.1:9001", "127.0.0.1:9002", "[::1]:9003"],
                          "health": {"kind": "none"}, **pool}},
    })


class FakeNode:
    def __init__(self, config: Config, clock: float = 1000.0):
        self.config = config
        self.clock = clock
        self.connections = 0
        self.reloads: list[Config] = []
        self.pools: dict[str, PoolRuntime] = {}
        self._apply(config)

    def now(self) -> float:
        return self.clock

    def reload(self, config: Config) -> None:
        check_references(config)
        self._apply(config)
        self.reloads.append(config)

    def _apply(self, config: Config) -> None:
        for name in [n for n in self.pools if n not in config.pools]:
            del self.pools[name]
        for name, pool in config.pools.items():
            if name in self.pools:
                self.pools[name].apply(pool)
            else:
                self.pools[name] = PoolRuntime(name, pool)
        self.config = config


class AsyncFakeNode(FakeNode):
    """Like the real node, whose reload is a coroutine that yields to the loop."""

    async def reload(self, config: Config) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        super().reload(config)


def pen_node(line: str = "-C 8888 8080 127.0.0.1:9001:10:20:3:1 [::1]:9002", pen_dir: Path | None = None) -> FakeNode:
    config = parse_pen_argv(line.split()).config
    config.control.pen_dir = str(pen_dir) if pen_dir else None
    return FakeNode(config)
