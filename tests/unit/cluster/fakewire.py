"""Several VRRP machines on a fake wire with a fake clock: adverts reach every other
router after `latency` unless a partition separates them; timers fire in time order."""

from __future__ import annotations

import heapq
import ipaddress
import itertools
from dataclasses import dataclass, field

from fulcrum.cluster.vrrp import fsm
from fulcrum.cluster.vrrp.timers import Deadlines


@dataclass
class Router:
    name: str
    machine: fsm.VrrpMachine
    deadlines: Deadlines = field(default_factory=Deadlines)
    holds_vips: bool = False
    running: bool = False  # False after a crash: no more events, no more packets
    sent: list[tuple[float, int]] = field(default_factory=list)  # (time, priority)
    notified: list[tuple[float, str]] = field(default_factory=list)
    announced: list[float] = field(default_factory=list)

    @property
    def state(self) -> fsm.State:
        return self.machine.state

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return self.machine.params.primary_address


class Wire:
    def __init__(self, latency: float = 0.001):
        self.now = 0.0
        self.latency = latency
        self.routers: dict[str, Router] = {}
        self.groups: list[set[str]] | None = None  # None: everyone hears everyone
        self._deliveries: list[tuple[float, int, str, fsm.AdvertReceived]] = []
        self._order = itertools.count()

    def add(self, name: str, priority: int, address: str, advert_centis: int = 100,
            **params: object) -> Router:
        machine = fsm.VrrpMachine(fsm.Params(priority, advert_centis, ipaddress.ip_address(address),
                                             **params))  # type: ignore[arg-type]
        router = Router(name, machine)
        self.routers[name] = router
        return router

    def start(self, name: str) -> None:
        router = self.routers[name]
        router.running = True
        self._apply(router, router.machine.handle(fsm.Startup(), self.now))

    def stop(self, name: str, fault: bool = False) -> None:
        router = self.routers[name]
        self._apply(router, router.machine.handle(fsm.Shutdown(fault), self.now))
        router.running = False

    def crash(self, name: str) -> None:
        """The process dies: no priority-0 advert, and its addresses vanish with it."""
        router = self.routers[name]
        router.running = False
        router.holds_vips = False
        router.deadlines = Deadlines()

    def set_priority(self, name: str, priority: int) -> None:
        router = self.routers[name]
        self._apply(router, router.machine.handle(fsm.PriorityChanged(priority), self.now))

    def partition(self, *groups: set[str]) -> None:
        self.groups = [set(group) for group in groups]

    def heal(self) -> None:
        self.groups = None

    def masters(self) -> list[str]:
        return sorted(name for name, r in self.routers.items() if r.running and r.state is fsm.State.MASTER)

    def vip_holders(self) -> list[str]:
        return sorted(name for name, r in self.routers.items() if r.holds_vips)

    def run_until(self, end: float) -> None:
        while True:
            upcoming = self._next_time()
            if upcoming is None or upcoming > end:
                break
            self.now = upcoming
            self._step()
        self.now = end

    def run_until_state(self, name: str, state: fsm.State, limit: float) -> float:
        """Advance until `name` is in `state`; the time it happened."""
        while self.routers[name].state is not state:
            upcoming = self._next_time()
            assert upcoming is not None and upcoming <= limit, f"{name} not {state} by {limit}"
            self.now = upcoming
            self._step()
        return self.now

    # -- internals ----------------------------------------------------------------------

    def _next_time(self) -> float | None:
        times = [due for r in self.routers.values() if r.running
                 for due in [r.deadlines.next_due()] if due is not None]
        if self._deliveries:
            times.append(self._deliveries[0][0])
        return min(times, default=None)

    def _step(self) -> None:
        while self._deliveries and self._deliveries[0][0] <= self.now:
            _, _, name, advert = heapq.heappop(self._deliveries)
            router = self.routers[name]
            if router.running:
                self._apply(router, router.machine.handle(advert, self.now))
        for router in self.routers.values():
            if router.running:
                for timer in router.deadlines.pop_expired(self.now):
                    self._apply(router, router.machine.handle(fsm.TIMER_EVENTS[timer], self.now))

    def _hears(self, sender: str, receiver: str) -> bool:
        return self.groups is None or any(sender in g and receiver in g for g in self.groups)

    def _apply(self, router: Router, actions: list[fsm.Action]) -> None:
        for action in actions:
            match action:
                case fsm.SendAdvert(priority):
                    router.sent.append((self.now, priority))
                    advert = fsm.AdvertReceived(priority, router.machine.params.advert_centis, router.address)
                    for other in self.routers:
                        if other != router.name and self._hears(router.name, other):
                            heapq.heappush(self._deliveries,
                                           (self.now + self.latency, next(self._order), other, advert))
                case fsm.StartTimer(timer, seconds):
                    router.deadlines.start(timer, self.now, seconds)
                case fsm.StopTimer(timer):
                    router.deadlines.stop(timer)
                case fsm.AddVips():
                    router.holds_vips = True
                case fsm.RemoveVips():
                    router.holds_vips = False
                case fsm.Announce():
                    router.announced.append(self.now)
                case fsm.Notify(state):
                    router.notified.append((self.now, state))
