"""The VRRP state machine of one virtual router (RFC 5798 §6; RFC 3768 §6 for version 2,
which differs only in its timers), as a transition table.

Pure: events come in with the time `now` (seconds, any monotonic origin), actions come
out; the caller sends packets, changes addresses and runs the timers. A pair of
(state, event) missing from the table is a bug in the caller and raises."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class State(Enum):
    INITIALIZE = "initialize"
    BACKUP = "backup"
    MASTER = "master"


class Timer(Enum):
    MASTER_DOWN = "master_down"  # §6.2 Master_Down_Timer
    ADVER = "adver"  # §6.2 Adver_Timer


class IllegalTransition(RuntimeError):
    pass


# -- events in ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Startup:
    pass


@dataclass(frozen=True)
class Shutdown:
    fault: bool = False  # a tracked object failed (notify on_fault) rather than a stop


@dataclass(frozen=True)
class AdvertReceived:
    priority: int
    max_advert_centis: int
    source: IPAddress  # the sender's primary address: the IP source of the advert


@dataclass(frozen=True)
class MasterDownTimerFired:
    pass


@dataclass(frozen=True)
class AdverTimerFired:
    pass


@dataclass(frozen=True)
class PriorityChanged:
    priority: int  # tracking moved the effective priority


Event = Startup | Shutdown | AdvertReceived | MasterDownTimerFired | AdverTimerFired | PriorityChanged

TIMER_EVENTS: dict[Timer, Event] = {Timer.MASTER_DOWN: MasterDownTimerFired(), Timer.ADVER: AdverTimerFired()}


# -- actions out -------------------------------------------------------------------------

@dataclass(frozen=True)
class SendAdvert:
    priority: int  # 0 = this master is stopping (§6.4.3)


@dataclass(frozen=True)
class AddVips:
    accept: bool  # §6.1 Accept_Mode (or owner): the VIPs accept traffic addressed to them


@dataclass(frozen=True)
class RemoveVips:
    pass


@dataclass(frozen=True)
class Announce:
    """Gratuitous ARP for IPv4 VIPs, unsolicited neighbour advertisements for IPv6 (§6.4.1)."""


@dataclass(frozen=True)
class StartTimer:
    timer: Timer
    seconds: float


@dataclass(frozen=True)
class StopTimer:
    timer: Timer


@dataclass(frozen=True)
class Notify:
    state: str  # "master", "backup", "fault" or "stop": which notify hooks to run


Action = SendAdvert | AddVips | RemoveVips | Announce | StartTimer | StopTimer | Notify


@dataclass
class Params:
    """The configured parameters of §6.1 (Master_Adver_Interval and the derived times
    live in the machine, because they follow the current master)."""

    priority: int  # 1..254; 255 = address owner
    advert_centis: int  # Advertisement_Interval
    primary_address: IPAddress  # this router's source address in adverts (§6.4.3 tie-break)
    preempt: bool = True  # Preempt_Mode
    preempt_delay: float = 0.0  # keepalived's extension: seconds before a preempt happens
    accept: bool = True  # Accept_Mode
    version: int = 3  # 2: RFC 3768's timers (no Master_Adver_Interval, Skew_Time in seconds)

    def __post_init__(self) -> None:
        if not 1 <= self.priority <= 255:
            raise ValueError("priority must be 1..255")
        if self.version == 3 and not 1 <= self.advert_centis <= 0x0FFF:
            raise ValueError("advert interval must be 1..4095 centiseconds")
        if self.version == 2 and (self.advert_centis % 100 or not 1 <= self.advert_centis // 100 <= 255):
            raise ValueError("a version 2 advert interval is 1..255 whole seconds (RFC 3768 §5.3.7)")
        if self.version not in (2, 3):
            raise ValueError("version must be 2 or 3")


@dataclass
class VrrpMachine:
    params: Params
    state: State = State.INITIALIZE
    priority: int = field(init=False)  # effective priority: configured plus tracking
    master_adver_centis: int = field(init=False)  # §6.1 Master_Adver_Interval
    preempt_at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.priority = self.params.priority
        self.master_adver_centis = self.params.advert_centis

    # §6.1: derived times, in seconds.
    @property
    def skew_time(self) -> float:
        if self.params.version == 2:
            # RFC 3768 §6.1: Skew_Time = (256 - Priority) / 256 seconds, whatever the interval.
            return (256 - self.priority) / 256
        return ((256 - self.priority) * self.master_adver_centis) / 256 / 100

    @property
    def master_down_interval(self) -> float:
        return 3 * self.master_adver_centis / 100 + self.skew_time

    @property
    def advertisement_interval(self) -> float:
        return self.params.advert_centis / 100

    @property
    def owner(self) -> bool:
        return self.params.priority == 255

    def handle(self, event: Event, now: float) -> list[Action]:
        handler = _TABLE.get((self.state, type(event)))
        if handler is None:
            raise IllegalTransition(f"{type(event).__name__} is not allowed in state {self.state.value}")
        return handler(self, event, now)

    # -- §6.4.1 Initialize ---------------------------------------------------------------

    def _startup(self, event: Event, now: float) -> list[Action]:
        if self.owner:  # the address owner is master at once
            return self._become_master()
        # Master_Adver_Interval starts as our own; the master's adverts will set it.
        self.master_adver_centis = self.params.advert_centis
        return self._become_backup(leaving_master=[])

    def _ignore(self, event: Event, now: float) -> list[Action]:
        return []

    # -- §6.4.2 Backup --------------------------------------------------------------------

    def _backup_shutdown(self, event: Event, now: float) -> list[Action]:
        assert isinstance(event, Shutdown)
        self._enter(State.INITIALIZE)
        return [StopTimer(Timer.MASTER_DOWN), Notify("fault" if event.fault else "stop")]

    def _backup_master_down(self, event: Event, now: float) -> list[Action]:
        return self._become_master()

    def _backup_advert(self, event: Event, now: float) -> list[Action]:
        assert isinstance(event, AdvertReceived)
        if event.priority == 0:
            # The master is stopping: take over after Skew_Time, so that the backup
            # with the highest priority goes first.
            return [StartTimer(Timer.MASTER_DOWN, self.skew_time)]
        if not self.params.preempt or event.priority >= self.priority or self._delaying_preempt(event, now):
            if event.priority >= self.priority:
                self.preempt_at = None
            self._learn_interval(event)
            return [StartTimer(Timer.MASTER_DOWN, self.master_down_interval)]
        # Preempt: discard the lower-priority advert; Master_Down_Timer will fire.
        return []

    def _learn_interval(self, event: AdvertReceived) -> None:
        # §6.4.2: Master_Adver_Interval follows the master's adverts. RFC 3768 has no such
        # parameter: every router uses its own Advertisement_Interval (§6.1), and adverts
        # with another interval are discarded before they get here (§7.1).
        if self.params.version == 3:
            self.master_adver_centis = event.max_advert_centis

    def _delaying_preempt(self, event: AdvertReceived, now: float) -> bool:
        # keepalived's preempt_delay: accept a lower-priority master until preempt_delay
        # has passed since we first saw it.
        if self.params.preempt_delay <= 0:
            return False
        if self.preempt_at is None:
            self.preempt_at = now + self.params.preempt_delay
        return now < self.preempt_at

    # -- §6.4.3 Master ---------------------------------------------------------------------

    def _master_shutdown(self, event: Event, now: float) -> list[Action]:
        assert isinstance(event, Shutdown)
        self._enter(State.INITIALIZE)
        return [StopTimer(Timer.ADVER), SendAdvert(0), RemoveVips(),
                Notify("fault" if event.fault else "stop")]

    def _master_adver_timer(self, event: Event, now: float) -> list[Action]:
        return [SendAdvert(self.priority), StartTimer(Timer.ADVER, self.advertisement_interval)]

    def _master_advert(self, event: Event, now: float) -> list[Action]:
        assert isinstance(event, AdvertReceived)
        if event.priority == 0:
            # Another master is stopping: advertise at once so backups see us.
            return [SendAdvert(self.priority), StartTimer(Timer.ADVER, self.advertisement_interval)]
        if event.priority > self.priority or (
                event.priority == self.priority and int(event.source) > int(self.params.primary_address)):
            # A better master exists; on equal priority the higher primary address wins.
            self._learn_interval(event)
            return self._become_backup(leaving_master=[StopTimer(Timer.ADVER), RemoveVips()])
        # §6.4.3 says discard: we remain master. Only another master sends adverts, so
        # this is a healed partition; like keepalived, answer at once so it yields now,
        # and announce again to undo what its announcements did to neighbour caches.
        return [SendAdvert(self.priority), StartTimer(Timer.ADVER, self.advertisement_interval), Announce()]

    # -- any state --------------------------------------------------------------------------

    def _priority_changed(self, event: Event, now: float) -> list[Action]:
        assert isinstance(event, PriorityChanged)
        if self.owner:
            raise ValueError("the address owner's priority is 255 and is not tracked (§5.2.4)")
        if not 1 <= event.priority <= 254:
            raise ValueError("a tracked priority stays within 1..254")
        # Skew_Time follows at the next timer start; a master's next advert carries it.
        self.priority = event.priority
        return []

    # -- transitions ------------------------------------------------------------------------

    def _become_master(self) -> list[Action]:
        # §6.4.1 / §6.4.2: send an advert, announce the addresses, start Adver_Timer.
        self._enter(State.MASTER)
        return [StopTimer(Timer.MASTER_DOWN), AddVips(accept=self.params.accept or self.owner),
                SendAdvert(self.priority), Announce(),
                StartTimer(Timer.ADVER, self.advertisement_interval), Notify("master")]

    def _become_backup(self, leaving_master: list[Action]) -> list[Action]:
        self._enter(State.BACKUP)
        return [*leaving_master, StartTimer(Timer.MASTER_DOWN, self.master_down_interval),
                Notify("backup")]

    def _enter(self, state: State) -> None:
        self.state = state
        self.preempt_at = None


_Handler = Callable[[VrrpMachine, Event, float], list[Action]]

_TABLE: dict[tuple[State, type], _Handler] = {
    (State.INITIALIZE, Startup): VrrpMachine._startup,
    (State.INITIALIZE, AdvertReceived): VrrpMachine._ignore,  # not participating
    (State.INITIALIZE, PriorityChanged): VrrpMachine._priority_changed,
    (State.BACKUP, Shutdown): VrrpMachine._backup_shutdown,
    (State.BACKUP, MasterDownTimerFired): VrrpMachine._backup_master_down,
    (State.BACKUP, AdvertReceived): VrrpMachine._backup_advert,
    (State.BACKUP, PriorityChanged): VrrpMachine._priority_changed,
    (State.MASTER, Shutdown): VrrpMachine._master_shutdown,
    (State.MASTER, AdverTimerFired): VrrpMachine._master_adver_timer,
    (State.MASTER, AdvertReceived): VrrpMachine._master_advert,
    (State.MASTER, PriorityChanged): VrrpMachine._priority_changed,
}
