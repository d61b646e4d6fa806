"""Node-wide totals of finished requests and connections with `workers > 1`: each
worker's observer (observe.py) counts what it served; every other worker sends its
totals and open connections to the first worker once a second, and the first worker,
which serves the control socket and the admin plane, adds them to its own.

    node_observer(node)      -> service_totals(name), server_totals(pool, key): node-wide
    node_connections(node)   -> connections open now on the whole node
    service_active(node, s)  -> connections open now to service `s`

With one worker they are the node's own figures. Other workers' part is at most
PUBLISH_INTERVAL old; a restarted worker starts again from zero, as a restarted
process does (Prometheus reads that as a counter reset)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fulcrum.observe import STATUS_CLASSES, Observer, Totals
from fulcrum.shared import required

if TYPE_CHECKING:
    from fulcrum.nodelike import NodeLike

log = logging.getLogger("fulcrum.workers")

PUBLISH_INTERVAL = 1.0


def _path(directory: str) -> str:
    return os.path.join(directory, "totals.sock")


@dataclass
class PeerTotals:
    """What the other workers last sent, by worker index (kept in the first worker)."""

    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)


def listen(node: NodeLike) -> socket.socket:
    """In the first worker: keep the other workers' latest totals."""
    shared = required(node.shared)
    path = _path(shared.directory)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    shared.peers = PeerTotals()
    asyncio.get_running_loop().add_reader(sock.fileno(), _receive, shared.peers, sock)
    return sock


def _receive(peers: PeerTotals, sock: socket.socket) -> None:
    while True:
        try:
            data = sock.recv(1 << 22)
        except BlockingIOError:
            return
        try:
            snapshot = json.loads(data)
            peers.snapshots[int(snapshot["worker"])] = snapshot
        except (ValueError, KeyError, TypeError) as err:
            log.warning("worker totals not understood: %s", err)


def publish(node: NodeLike) -> asyncio.TimerHandle:
    """In the other workers: send this worker's totals now and every PUBLISH_INTERVAL."""
    loop = asyncio.get_running_loop()
    directory = required(node.shared).directory
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    handle: list[asyncio.TimerHandle] = []

    def send() -> None:
        try:
            sender.sendto(json.dumps(snapshot(node)).encode(), _path(directory))
        except OSError:
            pass  # the first worker is restarting: the next second tells it
        handle[:] = [loop.call_later(PUBLISH_INTERVAL, send)]

    send()
    return handle[0]


def snapshot(node: NodeLike) -> dict[str, Any]:
    observer: Observer = node.observer
    return {
        "worker": required(node.shared).index,
        "connections": node.connections,
        "active": {name: ctx.connections.current for name, ctx in node.contexts.items()},
        "services": {name: totals.as_dict() for name, totals in observer.services.items()},
        "servers": [[pool, key, totals.as_dict()] for (pool, key), totals in observer.servers.items()],
    }


def _from_dict(data: dict[str, Any]) -> Totals:
    statuses = data.get("statuses") or {}
    return Totals(requests=data["requests"], connections=data["connections"], bytes_in=data["bytes_in"],
                  bytes_out=data["bytes_out"], statuses=[int(statuses.get(c, 0)) for c in STATUS_CLASSES],
                  errors=data["errors"], terminations=dict(data.get("terminations") or {}))


def _merged(parts: list[Totals]) -> Totals:
    total = Totals()
    for part in parts:
        total.requests += part.requests
        total.connections += part.connections
        total.bytes_in += part.bytes_in
        total.bytes_out += part.bytes_out
        total.statuses = [a + b for a, b in zip(total.statuses, part.statuses, strict=True)]
        total.errors += part.errors
        for reason, count in part.terminations.items():
            total.terminations[reason] = total.terminations.get(reason, 0) + count
    return total


class NodeObserver:
    """The observer's two questions, answered for the whole node."""

    def __init__(self, own: Observer, snapshots: list[dict[str, Any]]):
        self.own = own
        self.snapshots = snapshots

    def service_totals(self, name: str) -> Totals:
        parts = [self.own.service_totals(name)]
        parts += [_from_dict(s["services"][name]) for s in self.snapshots if name in s["services"]]
        return _merged(parts)

    def server_totals(self, pool: str, server: str) -> Totals:
        parts = [self.own.server_totals(pool, server)]
        for snap in self.snapshots:
            parts += [_from_dict(t) for p, k, t in snap["servers"] if p == pool and k == server]
        return _merged(parts)


def _snapshots(node: NodeLike) -> list[dict[str, Any]]:
    shared = getattr(node, "shared", None)
    peers = getattr(shared, "peers", None)
    return list(peers.snapshots.values()) if peers is not None else []


def node_observer(node: NodeLike) -> Observer | NodeObserver:
    own = getattr(node, "observer", None) or Observer()
    snapshots = _snapshots(node)
    return NodeObserver(own, snapshots) if snapshots else own


def node_connections(node: NodeLike) -> int:
    return int(node.connections) + sum(int(s["connections"]) for s in _snapshots(node))


def service_active(node: NodeLike, name: str) -> int:
    ctx = getattr(node, "contexts", {}).get(name)
    own = ctx.connections.current if ctx is not None else 0
    return int(own) + sum(int(s["active"].get(name, 0)) for s in _snapshots(node))
