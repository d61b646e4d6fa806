"""One virtual router on the engine's loop: drives its pure VRRP machine from the raw
socket and the loop's clock, and carries out its actions (adverts, VIPs through
netlink, announcements, notify hooks); tracking adjusts its priority or faults it."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from fulcrum.cluster.hooks import HookRunner
from fulcrum.cluster.track import Tracking
from fulcrum.cluster.vip import Announcer, Interface
from fulcrum.cluster.vrrp import fsm
from fulcrum.cluster.vrrp.packet import (
    AUTH_NONE,
    AUTH_PASSWORD,
    Advert,
    MalformedPacket,
    check_ip_header,
    decode,
    encode,
    v2_discard_reason,
)
from fulcrum.cluster.vrrp.socket import VrrpSocket
from fulcrum.cluster.vrrp.timers import Deadlines
from fulcrum.config.cluster import VirtualRouter

log = logging.getLogger("fulcrum.cluster")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

# asyncio may run a timer callback a clock tick before its deadline.
_EARLY = 1e-4
# A failed announcement is sent again after 0.1 s, doubling up to 1 s, while master.
ANNOUNCE_RETRY_FIRST, ANNOUNCE_RETRY_MAX = 0.1, 1.0


class RouterDriver:
    """One virtual router: its machine, socket, addresses, timers and hooks."""

    def __init__(self, name: str, config: VirtualRouter, loop: asyncio.AbstractEventLoop,
                 netlink: ThreadPoolExecutor, interface: Interface, announcer: Announcer,
                 source: IPAddress):
        self.name = name
        self.config = config
        self.loop = loop
        self.netlink = netlink
        self.interface = interface
        self.source = source
        self.hooks = HookRunner(name, config.notify)
        # blocking work to finish before the VIPs take traffic (conntrackd's commit), run
        # on the netlink worker ahead of the address changes
        self.before_vips: Callable[[], object] | None = None
        self.deadlines: Deadlines[fsm.Timer] = Deadlines()
        self._timer: asyncio.TimerHandle | None = None
        self._announcing: list[asyncio.TimerHandle] = []
        self._refresh: asyncio.TimerHandle | None = None
        self._retry: asyncio.TimerHandle | None = None  # announcements that failed, again
        self._announce_retries = 0
        self._send_failing = False
        self.socket = VrrpSocket(config.interface, config.family, source, list(config.unicast_peers))
        self.announcer = announcer
        self.advert_centis = round(config.advert_interval * 100)
        self.password = config.authentication.password.encode() if config.authentication else None
        self.machine = fsm.VrrpMachine(fsm.Params(
            config.priority, self.advert_centis, source, config.preempt,
            config.preempt_delay, config.accept, config.version))
        self.dropped = 0  # malformed packets (§7.1), for status
        self.tracking = Tracking(config.priority)
        for tracked in config.track.interfaces:
            self.tracking.add(f"interface {tracked.name}", tracked.weight)
        for ping in config.track.ping:
            self.tracking.add(f"ping {ping.target}", ping.weight)
        for pool in config.track.pools:
            self.tracking.add(f"pool {pool.pool}", pool.weight)
        self.started = False
        self.fault = False
        self._mismatched: set[IPAddress] = set()
        self._discarded: set[tuple[IPAddress, str]] = set()  # (sender, reason) logged once
        self.transitions = 0  # state changes, for status and metrics
        self.peer: tuple[IPAddress, int, float] | None = None  # last advert: source, priority, wall time

    @classmethod
    async def open(cls, name: str, config: VirtualRouter) -> RouterDriver:
        # pyroute2's synchronous IPRoute runs its own loop, so netlink work happens on
        # one worker thread: in order, and never stalling the adverts.
        loop = asyncio.get_running_loop()
        netlink = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"netlink-{name}")
        interface = await loop.run_in_executor(netlink, Interface, config.interface)
        vip_addresses = {vip.ip for vip in config.vips}
        source = config.unicast_src
        if source is None:
            source = await loop.run_in_executor(
                netlink, interface.primary_address, config.family, vip_addresses)
        announcer = await loop.run_in_executor(netlink, Announcer, interface)
        return cls(name, config, loop, netlink, interface, announcer, source)

    @property
    def state(self) -> fsm.State:
        return self.machine.state

    async def start(self) -> None:
        # A crashed run may have left our VIPs behind; a backup must not hold them.
        for vip in self.config.vips:
            self._netlink_call(self.interface.remove, vip)
        await self._netlink_done()
        self.loop.add_reader(self.socket.fileno(), self._on_readable)
        log.info("%s: vrid %d on %s from %s, priority %d", self.name, self.config.vrid,
                 self.config.interface, self.source, self.config.priority)
        self.started = True
        self._follow_tracking()
        if not self.fault:
            self._handle(fsm.Startup())

    def tracked(self, key: str, healthy: bool) -> None:
        """A tracked interface, ping target or pool changed health."""
        if self.tracking.set(key, healthy):
            log.info("%s: %s is %s", self.name, key, "healthy" if healthy else "failed")
            if self.started:
                self._follow_tracking()

    def link_up(self) -> None:
        """Our interface is up again: a master announces its VIPs, because neighbours may
        have learnt the peer's MAC meanwhile (and the first send may still fail with the
        ENETDOWN the kernel kept from the link going down: retried)."""
        if self.machine.state is fsm.State.MASTER:
            log.info("%s: %s is up again: announcing the VIPs", self.name, self.config.interface)
            self._announce()

    def _follow_tracking(self) -> None:
        verdict = self.tracking.verdict()
        if not self.owner and verdict.priority != self.machine.priority:
            log.info("%s: priority %d -> %d", self.name, self.machine.priority, verdict.priority)
            self._handle(fsm.PriorityChanged(verdict.priority))
        if verdict.fault and not self.fault:
            self.fault = True
            log.warning("%s: fault (%s)", self.name, ", ".join(verdict.reasons))
            if self.machine.state is fsm.State.INITIALIZE:
                self.hooks.state_changed("fault")
            else:
                self._handle(fsm.Shutdown(fault=True))
        elif not verdict.fault and self.fault:
            self.fault = False
            log.info("%s: fault cleared", self.name)
            self._handle(fsm.Startup())

    @property
    def owner(self) -> bool:
        return self.config.priority == 255

    def _netlink_call(self, function: Callable[..., object], *args: object) -> None:
        future = self.loop.run_in_executor(self.netlink, function, *args)
        future.add_done_callback(self._log_failure)

    def _log_failure(self, future: asyncio.Future[object]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("%s: netlink: %s", self.name, future.exception())

    async def _netlink_done(self) -> None:
        """Until every netlink call queued so far has run (the worker runs them in order)."""
        await self.loop.run_in_executor(self.netlink, lambda: None)

    async def stop(self) -> None:
        if self.machine.state is not fsm.State.INITIALIZE:
            self._handle(fsm.Shutdown())
        self.loop.remove_reader(self.socket.fileno())
        if self._timer:
            self._timer.cancel()
        await self._netlink_done()
        await self.hooks.wait()
        self.socket.close()
        self.announcer.close()
        await self.loop.run_in_executor(self.netlink, self.interface.close)
        self.netlink.shutdown()

    def _handle(self, event: fsm.Event) -> None:
        before = self.machine.state
        actions = self.machine.handle(event, self.loop.time())
        if self.machine.state is not before:
            self.transitions += 1
            log.info("%s: %s -> %s", self.name, before.value, self.machine.state.value)
        for action in actions:
            self._apply(action)
        self._reschedule()

    def _apply(self, action: fsm.Action) -> None:
        match action:
            case fsm.SendAdvert(priority):
                self._send_advert(priority)
            case fsm.StartTimer(timer, seconds):
                self.deadlines.start(timer, self.loop.time(), seconds)
            case fsm.StopTimer(timer):
                self.deadlines.stop(timer)
            case fsm.AddVips(accept):
                if not accept:
                    log.warning("%s: accept=false is not enforced yet; the VIPs accept traffic", self.name)
                if self.before_vips is not None:  # queued first: the VIPs wait for it
                    self._netlink_call(self.before_vips)
                for vip in self.config.vips:
                    self._netlink_call(self.interface.add, vip)
            case fsm.RemoveVips():
                self._stop_announcing()
                for vip in self.config.vips:
                    self._netlink_call(self.interface.remove, vip)
            case fsm.Announce():
                self._announce()
            case fsm.Notify(state):
                self.hooks.state_changed(state)

    def _send_advert(self, priority: int) -> None:
        addresses = tuple(vip.ip for vip in self.config.vips)
        if self.config.version == 2:
            advert = Advert(self.config.vrid, priority, self.advert_centis, addresses, 2,
                            AUTH_NONE if self.password is None else AUTH_PASSWORD, self.password or b"")
        else:
            advert = Advert(self.config.vrid, priority, self.advert_centis, addresses)
        for destination in self.socket.destinations:
            try:
                self.socket.send(encode(advert, self.source, destination), destination)
            except OSError as err:  # e.g. the link is down; the timers carry on
                if not self._send_failing:
                    log.warning("%s: sending adverts to %s fails: %s", self.name, destination, err)
                self._send_failing = True
            else:
                if self._send_failing:
                    log.info("%s: sending adverts works again", self.name)
                self._send_failing = False

    def _announce(self) -> None:
        # Gratuitous ARP / unsolicited NA as keepalived sends them: `repeat` packets
        # `interval` apart, the same again `delay` later (garp_master_delay: a switch or
        # neighbour that missed the first set, e.g. while a link came up), then every
        # `refresh` while master.
        settings = self.config.announce
        now = self.loop.time()
        self._announcing = [handle for handle in self._announcing if handle.when() > now]
        for start in (0.0, settings.delay) if settings.delay > 0 else (0.0,):
            for i in range(settings.repeat):
                # Queued behind AddVips on the netlink worker: the address exists when announced.
                self._announcing.append(self.loop.call_later(
                    start + i * settings.interval, self._announce_now, list(self.config.vips)))
        if self._refresh:
            self._refresh.cancel()
        if settings.refresh > 0:
            self._refresh = self.loop.call_later(settings.refresh, self._announce)

    def _announce_now(self, vips: list[IPInterface]) -> None:
        future = self.loop.run_in_executor(self.netlink, self.announcer.announce, vips)
        future.add_done_callback(self._announced)

    def _announced(self, future: asyncio.Future[list[tuple[IPInterface, OSError]]]) -> None:
        """Retry what failed (ENETDOWN while a link comes back, say) with a growing delay
        for as long as we are master: an unannounced VIP is unreachable until neighbour
        caches expire."""
        if future.cancelled() or self.machine.state is not fsm.State.MASTER:
            return
        if future.exception() is not None:
            log.error("%s: announcing: %s", self.name, future.exception())
            return
        if not future.result():
            if self._announce_retries:
                log.info("%s: announcing %s on %s works again", self.name,
                         ", ".join(str(vip.ip) for vip in self.config.vips), self.config.interface)
                self._announce_retries = 0
            return
        if self._retry is not None and self._retry.when() > self.loop.time():
            return  # one retry is pending already (a set of packets fails together)
        if self._announce_retries == 0:
            vip, err = future.result()[0]
            log.warning("%s: announcing %s on %s failed: %s; retrying until it works",
                        self.name, vip.ip, self.config.interface, err)
        delay = min(ANNOUNCE_RETRY_FIRST * 2 ** self._announce_retries, ANNOUNCE_RETRY_MAX)
        self._announce_retries += 1
        self._retry = self.loop.call_later(delay, self._announce_now, list(self.config.vips))

    def _stop_announcing(self) -> None:
        for handle in [*self._announcing, *(h for h in (self._refresh, self._retry) if h)]:
            handle.cancel()
        self._announcing, self._refresh, self._retry = [], None, None
        self._announce_retries = 0

    def _reschedule(self) -> None:
        if self._timer:
            self._timer.cancel()
        due = self.deadlines.next_due()
        self._timer = None if due is None else self.loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        for timer in self.deadlines.pop_expired(self.loop.time() + _EARLY):
            self._handle(fsm.TIMER_EVENTS[timer])
        self._reschedule()

    def _on_readable(self) -> None:
        while (received := self.socket.receive()) is not None:
            try:
                check_ip_header(received.ttl, received.protocol)  # §7.1
                advert = decode(received.payload, received.source, received.destination)
            except MalformedPacket as err:
                self.dropped += 1
                log.debug("%s: dropped a packet from %s: %s", self.name, received.source, err)
                continue
            if advert.vrid != self.config.vrid or received.source == self.source:
                continue  # another virtual router, or our own advert
            if self.socket.unicast and received.source not in self.config.unicast_peers:
                continue
            reason = self._discard_reason(advert)
            if reason is not None:  # §7.1 of both RFCs: discard, SHOULD log
                self.dropped += 1
                if (received.source, reason) not in self._discarded:
                    self._discarded.add((received.source, reason))
                    log.warning("%s: ignoring adverts from %s: %s", self.name, received.source, reason)
                continue
            self._check_addresses(advert, received.source)
            self.peer = (received.source, advert.priority, time.time())
            self._handle(fsm.AdvertReceived(advert.priority, advert.max_advert_centis, received.source))

    def _discard_reason(self, advert: Advert) -> str | None:
        if advert.version != self.config.version:
            # A peer of the other version is a configuration error the operator must see:
            # keepalived speaks version 2 for IPv4 unless told `vrrp_version 3`.
            return f"VRRPv{advert.version}, this router speaks VRRPv{self.config.version} (set version = {advert.version})"
        if advert.version == 2:
            return v2_discard_reason(advert, self.advert_centis, self.password)
        return None

    def _check_addresses(self, advert: Advert, source: IPAddress) -> None:
        # §7.1: MAY check that the advert lists our addresses; a mismatch is a
        # configuration error worth one log line per sender, not a reason to drop.
        ours = {vip.ip for vip in self.config.vips}
        if set(advert.addresses) != ours and source not in self._mismatched:
            self._mismatched.add(source)
            log.warning("%s: %s advertises %s, we have %s", self.name, source,
                        ", ".join(map(str, advert.addresses)), ", ".join(map(str, sorted(ours, key=int))))

    def status(self) -> dict[str, object]:
        return {
            "state": self.machine.state.value, "fault": self.fault, "priority": self.machine.priority,
            "master_adver_interval": self.machine.master_adver_centis / 100,
            "failed": list(self.tracking.verdict().reasons), "dropped_packets": self.dropped,
            "vrid": self.config.vrid, "interface": self.config.interface,
            "vips": [str(vip) for vip in self.config.vips], "transitions": self.transitions,
            # the other router we last heard (in Backup: the master); priority 0 = it left
            "peer": None if self.peer is None else {
                "address": str(self.peer[0]), "priority": self.peer[1], "heard_at": self.peer[2]},
        }
