"""Scheduler registry: algorithm name -> module. Modules are imported on first use; the
names are config/schedulers.py's (the model checks a pool's scheduler against them).

IPVS names where IPVS has the algorithm, mod_proxy_balancer names for its own,
and pen's behaviours under their pen names."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from fulcrum.balance.base import Backend, Options, Scheduler
from fulcrum.config.schedulers import SCHEDULERS

_registered: dict[str, type[Scheduler]] = {}


def register(cls: type[Scheduler]) -> type[Scheduler]:
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    _registered[cls.name] = cls
    return cls


def scheduler_class(name: str) -> type[Scheduler]:
    if name not in _registered:
        if name not in SCHEDULERS:
            raise KeyError(f"unknown scheduler {name!r}")
        importlib.import_module(f"fulcrum.balance.{SCHEDULERS[name]}")
    return _registered[name]


def make_scheduler(name: str, backends: Sequence[Backend], options: Options | None = None) -> Scheduler:
    return scheduler_class(name)(backends, options)
