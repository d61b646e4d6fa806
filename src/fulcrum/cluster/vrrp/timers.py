"""Deadlines of named timers. Pure: the caller passes `now` and decides how to sleep
until `next_due()`; the same table drives the real runner and the fake-clock tests."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

Name = TypeVar("Name", bound=Hashable)


class Deadlines(Generic[Name]):
    def __init__(self) -> None:
        self._due: dict[Name, float] = {}

    def start(self, name: Name, now: float, delay: float) -> None:
        """(Re)start a timer: an earlier deadline of the same name is forgotten."""
        self._due[name] = now + delay

    def stop(self, name: Name) -> None:
        self._due.pop(name, None)

    def running(self, name: Name) -> bool:
        return name in self._due

    def due_at(self, name: Name) -> float | None:
        return self._due.get(name)

    def next_due(self) -> float | None:
        return min(self._due.values(), default=None)

    def pop_expired(self, now: float) -> list[Name]:
        """The timers due at or before `now`, earliest first; they stop running."""
        expired = sorted((due, i, name) for i, (name, due) in enumerate(self._due.items()) if due <= now)
        for _, _, name in expired:
            del self._due[name]
        return [name for _, _, name in expired]
