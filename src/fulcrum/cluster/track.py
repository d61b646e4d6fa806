"""What tracking does to a virtual router's priority. Pure.

keepalived's rules, so its configurations and Heartbeat's ipfail import as they are:
a tracked object with a positive weight adds it to the priority while healthy, one with
a negative weight adds it (lowers the priority) while failed, and a failed object with
weight 0 puts the virtual router in fault state: it leaves the election until it heals.
The result stays within 1..254; the address owner (255) is never lowered (§5.2.4)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    priority: int
    fault: bool
    reasons: tuple[str, ...]  # the failed objects, for logs and status


class Tracking:
    def __init__(self, base_priority: int):
        self.base = base_priority
        self._weights: dict[str, int] = {}
        self._healthy: dict[str, bool] = {}

    def add(self, key: str, weight: int, healthy: bool = True) -> None:
        """Track `key` (e.g. "interface eth1", "ping 198.18.0.1", "pool web")."""
        self._weights[key] = weight
        self._healthy[key] = healthy

    def __contains__(self, key: str) -> bool:
        return key in self._weights

    def set(self, key: str, healthy: bool) -> bool:
        """Record a health change; whether it was a change."""
        if key not in self._weights:
            raise KeyError(f"{key!r} is not tracked")
        changed = self._healthy[key] != healthy
        self._healthy[key] = healthy
        return changed

    def verdict(self) -> Verdict:
        failed = tuple(key for key, healthy in self._healthy.items() if not healthy)
        fault = any(self._weights[key] == 0 for key in failed)
        if self.base == 255:
            return Verdict(255, fault, failed)
        priority = self.base
        for key, weight in self._weights.items():
            healthy = self._healthy[key]
            if (weight > 0 and healthy) or (weight < 0 and not healthy):
                priority += weight
        return Verdict(min(254, max(1, priority)), fault, failed)
