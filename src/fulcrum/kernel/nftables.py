"""Edge: sends rendered plans (kernel/render.py) to the kernel with the `nft` command.

Every change is one `nft -f` transaction - the kernel applies all of it or none:
- `replace`: at start. Creates our tables afresh (`add table` + `delete table` + the
  new table in one batch), so a table left by a crash is replaced cleanly; tables and
  chains of anyone else are never named.
- `update`: later. Only what differs from the last applied plan: map elements in the
  common case (a server down, up, drained, weighted), a service's chains and maps when
  the service itself changed. Nothing is flushed and reloaded, and connection
  tracking keeps established flows on their server.
- `remove`: on SIGTERM, deletes our tables (and nothing else).

Dynamic maps (dsr flows, persistence) are filled by the kernel; when a server stops
keeping flows (down, disabled), its entries are deleted from them."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from collections.abc import Iterable
from typing import Any

from fulcrum.kernel.render import Plan, Table

log = logging.getLogger("fulcrum.kernel")

NFT_TIMEOUT = 30.0  # seconds; a Maglev map of 65521 elements takes well under one
FAMILIES = ("inet", "netdev")


class NftError(Exception):
    """`nft` refused a transaction or could not be run (one line, with nft's reason)."""


def run_nft(*args: str, script: str | None = None) -> str:
    if shutil.which("nft") is None:
        raise NftError("the `nft` command is not installed (Debian package nftables)")
    try:
        result = subprocess.run(["nft", *args], input=script, capture_output=True, text=True,
                                timeout=NFT_TIMEOUT)
    except subprocess.TimeoutExpired as err:
        raise NftError(f"nft {' '.join(args)} did not finish within {NFT_TIMEOUT:g}s") from err
    if result.returncode != 0:
        reason = " ".join(result.stderr.split())[:500] or f"exit status {result.returncode}"
        raise NftError(f"nft {' '.join(args)}: {reason}")
    return result.stdout


# -- transactions (pure: plans in, nft script text out) -------------------------------

def _elements(verb: str, table: Table, name: str, items: Iterable[str]) -> list[str]:
    items = list(items)
    if not items:
        return []
    return [f"{verb} element {table.family} {table.name} {name} {{ {', '.join(items)} }}"]


def _creation(table: Table, maps: Iterable[str], chains: Iterable[str],
              rules_of: Iterable[str], elements_of: Iterable[str]) -> list[str]:
    where = f"{table.family} {table.name}"
    out = []
    for name in maps:
        if name in table.maps:
            out.append(f"add map {where} {name} {{ {table.maps[name]} }}")
        else:
            out.append(f"add set {where} {name} {{ {table.sets[name]} }}")
    for name in chains:
        header = table.chains[name].header
        out.append(f"add chain {where} {name}" + (f" {{ {header} }}" if header else ""))
    for name in rules_of:
        out.extend(f"add rule {where} {name} {rule}" for rule in table.chains[name].rules)
    for name in elements_of:
        out.extend(_elements("add", table, name, (f"{k} : {v}" for k, v in table.elements.get(name, {}).items())))
    return out


def replace_script(plan: Plan, table_name: str) -> str:
    """Our tables afresh, whatever was there: one transaction."""
    lines = []
    for family in FAMILIES:
        lines += [f"add table {family} {table_name}", f"delete table {family} {table_name}"]
    for table in plan.tables.values():
        lines.append(f"add table {table.family} {table.name}")
        lines += _creation(table, [*table.maps, *table.sets], table.chains, table.chains, table.elements)
    return "\n".join(lines) + "\n"


def update_script(old: Plan, new: Plan) -> str:
    """What turns the applied `old` into `new`; "" when nothing differs."""
    lines: list[str] = []
    for family in FAMILIES:
        before, after = old.tables.get(family), new.tables.get(family)
        if before is None and after is None:
            continue
        if after is None:
            assert before is not None
            lines.append(f"delete table {family} {before.name}")
        elif before is None:
            lines.append(f"add table {family} {after.name}")
            lines += _creation(after, [*after.maps, *after.sets], after.chains, after.chains, after.elements)
        else:
            lines += _table_diff(before, after)
    return "\n".join(lines) + "\n" if lines else ""


def _table_diff(old: Table, new: Table) -> list[str]:
    where = f"{new.family} {new.name}"
    maps_gone = [m for m in old.maps if new.maps.get(m) != old.maps[m]]
    maps_new = [m for m in new.maps if old.maps.get(m) != new.maps[m]]
    sets_gone = [m for m in old.sets if new.sets.get(m) != old.sets[m]]
    sets_new = [m for m in new.sets if old.sets.get(m) != new.sets[m]]
    chains_gone = [c for c in old.chains if c not in new.chains or new.chains[c].header != old.chains[c].header]
    chains_new = [c for c in new.chains if c not in old.chains or old.chains[c].header != new.chains[c].header]
    # a map or set that is re-created must first lose the rules that refer to it
    recreated = [re.compile(rf"@{re.escape(m)}\b") for m in maps_gone + sets_gone if m in new.maps or m in new.sets]
    refill = [c for c in new.chains if c in old.chains and c not in chains_new
              and (old.chains[c].rules != new.chains[c].rules
                   or any(p.search(rule) for p in recreated for rule in old.chains[c].rules))]
    lines = []
    # 1. elements that go or change, in maps that stay
    for name, elements in old.elements.items():
        if name in maps_gone:
            continue
        wanted = new.elements.get(name, {})
        lines += _elements("delete", new, name, (k for k, v in elements.items() if wanted.get(k) != v))
    # 2. rules of chains that change or go (they may refer to what goes next)
    lines += [f"flush chain {where} {c}" for c in refill + chains_gone]
    # 3. maps, then chains, that go
    lines += [f"delete map {where} {m}" for m in maps_gone]
    lines += [f"delete set {where} {m}" for m in sets_gone]
    lines += [f"delete chain {where} {c}" for c in chains_gone]
    # 4. what is new or changed, elements last (they refer to chains)
    lines += _creation(new, maps_new + sets_new, chains_new, chains_new + refill, [])
    for name, elements in new.elements.items():
        before = {} if name in maps_new else old.elements.get(name, {})
        lines += _elements("add", new, name, (f"{k} : {v}" for k, v in elements.items() if before.get(k) != v))
    return lines


# -- reading back -----------------------------------------------------------------------

def _text(value: Any) -> str:
    """A JSON key or value as nft's input syntax writes it (concatenations joined by ' . ')."""
    if isinstance(value, dict):
        if "concat" in value:
            return " . ".join(_text(v) for v in value["concat"])
        if "elem" in value:
            return _text(value["elem"]["val"])
        if "prefix" in value:
            return f"{value['prefix']['addr']}/{value['prefix']['len']}"
    return str(value)


def map_entries(family: str, table: str, name: str) -> list[tuple[str, str]]:
    """(key, value) of every element of a map, as text."""
    data = json.loads(run_nft("-j", "list", "map", family, table, name))
    for item in data.get("nftables", []):
        if "map" in item:
            return [(_text(key), _text(value)) for key, value in item["map"].get("elem", [])]
    return []


def table_json(family: str, table: str) -> list[dict[str, Any]] | None:
    """The table's objects as libnftables JSON, or None when it does not exist."""
    try:
        data = json.loads(run_nft("-j", "list", "table", family, table))
    except NftError:
        return None
    items: list[dict[str, Any]] = data.get("nftables", [])
    return items


def counters(family: str, table: str) -> dict[str, tuple[int, int]]:
    """Named counters of our table: comment -> (packets, bytes)."""
    out: dict[str, tuple[int, int]] = {}
    for item in table_json(family, table) or []:
        rule = item.get("rule")
        if not rule or "comment" not in rule:
            continue
        for expr in rule.get("expr", []):
            if "counter" in expr:
                out[rule["comment"]] = (int(expr["counter"]["packets"]), int(expr["counter"]["bytes"]))
    return out


class Applier:
    """Keeps the kernel's tables equal to the last plan it was given."""

    def __init__(self, table_name: str):
        self.table_name = table_name
        self.applied: Plan | None = None

    def replace(self, plan: Plan) -> None:
        run_nft("-f", "-", script=replace_script(plan, self.table_name))
        self.applied = plan
        self._purge(None, plan)

    def update(self, plan: Plan) -> None:
        if self.applied is None:
            self.replace(plan)
            return
        script = update_script(self.applied, plan)
        if script:
            run_nft("-f", "-", script=script)
        old, self.applied = self.applied, plan
        self._purge(old, plan)

    def remove(self) -> None:
        """Delete our tables; nothing else is touched."""
        if self.applied is None:
            return
        script = "".join(f"add table {f} {self.table_name}\ndelete table {f} {self.table_name}\n"
                         for f in FAMILIES)
        run_nft("-f", "-", script=script)
        self.applied = None

    def _purge(self, old: Plan | None, new: Plan) -> None:
        """Entries of dynamic maps and sets whose server no longer keeps flows."""
        for family, table in new.tables.items():
            before = old.tables.get(family) if old is not None else None
            emptied = table.forget - (before.forget if before is not None else frozenset())
            if emptied:
                run_nft("-f", "-", script="".join(f"flush set {family} {table.name} {name}\n"
                                                  for name in sorted(emptied)))
            for name, allowed in table.dynamic.items():
                if before is not None and name in before.dynamic and before.dynamic[name] <= allowed:
                    continue  # no server left the map's allowed values
                stale = [key for key, value in map_entries(family, table.name, name) if value not in allowed]
                if not stale:
                    continue
                try:
                    run_nft("-f", "-", script="\n".join(_elements("delete", table, name, stale)) + "\n")
                except NftError:
                    # an entry expired meanwhile; delete the rest one by one
                    for key in stale:
                        try:
                            run_nft("-f", "-", script="\n".join(_elements("delete", table, name, [key])) + "\n")
                        except NftError:
                            pass
                log.info("%s %s: forgot %d flow(s) of servers that left", family, name, len(stale))
