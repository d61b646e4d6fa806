"""Scheduler registry: algorithm name -> module. Modules are imported on first use.

IPVS names where IPVS has the algorithm, mod_proxy_balancer names for its own,
and pen's behaviours under their pen names."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from fulcrum.balance.base import Backend, Options, Scheduler

# name -> module under fulcrum.balance that registers it
MODULES: dict[str, str] = {
    # IPVS
    "rr": "rr",
    "wrr": "wrr",
    "lc": "lc",
    "wlc": "wlc",
    "sed": "sed",
    "nq": "nq",
    "sh": "sh",
    "dh": "dh",
    "mh": "maglev",
    "fo": "fo",
    "ovf": "ovf",
    "lblc": "lblc",
    "lblcr": "lblcr",
    # mod_proxy_balancer
    "byrequests": "byrequests",
    "bytraffic": "bytraffic",
    "bybusyness": "bybusyness",
    # weighted random (nftables numgen random)
    "random": "random",
    # power of two random choices
    "random2": "random2",
    # pen
    "hash": "hash",
    "weight": "weight",
    "prio": "prio",
}

_registered: dict[str, type[Scheduler]] = {}


def register(cls: type[Scheduler]) -> type[Scheduler]:
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    _registered[cls.name] = cls
    return cls


def known_schedulers() -> set[str]:
    return set(MODULES)


def scheduler_class(name: str) -> type[Scheduler]:
    if name not in _registered:
        if name not in MODULES:
            raise KeyError(f"unknown scheduler {name!r}")
        importlib.import_module(f"fulcrum.balance.{MODULES[name]}")
    return _registered[name]


def make_scheduler(name: str, backends: Sequence[Backend], options: Options | None = None) -> Scheduler:
    return scheduler_class(name)(backends, options)
