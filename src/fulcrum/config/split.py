"""What config sync shares and what stays on each node — defined here and nowhere else.

Shared: everything that describes the service (services, pools, timeouts, limits,
the pen control port, and each virtual router's VRID, VIPs, timers, preempt, tracked
pools and notify hooks). Node-local: what names this machine's hardware or files,
or ranks it against its peers:

- `log`, `workers`, `sync` (the whole section: each node lists its own peers), `user`, `admin`
  (each node's own listener, certificate and users),
- `control.pidfile`, `control.status_file`, `control.socket`, `control.pen_dir` (paths on
  this machine),
- per virtual router: `interface`, `priority`, `unicast_src`, `unicast_peers`
  (each node's peers are the others), `track.interfaces`, `track.ping`.

A virtual router that arrives from a peer but is unknown here cannot be merged: only
this node knows its interface and priority. The change is refused with a message
saying so, rather than guessed (a wrong interface or an equal priority would make
a VRRP mistake on both nodes)."""

from __future__ import annotations

import copy
from typing import Any

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.config.model import Config

LOCAL_TOP = ("log", "workers", "sync", "user", "admin")
LOCAL_CONTROL = ("pidfile", "status_file", "socket", "pen_dir")
LOCAL_ROUTER = ("interface", "priority", "unicast_src", "unicast_peers")
LOCAL_TRACK = ("interfaces", "ping")


def shared_part(config: Config) -> dict[str, Any]:
    """The configuration minus node-local settings, as plain JSON data."""
    data: dict[str, Any] = config.model_dump(mode="json")
    for key in LOCAL_TOP:
        data.pop(key, None)
    for key in LOCAL_CONTROL:
        data["control"].pop(key, None)
    for router in _routers(data).values():
        for key in LOCAL_ROUTER:
            router.pop(key, None)
        for key in LOCAL_TRACK:
            router["track"].pop(key, None)
    return data


def local_part(config: Config) -> dict[str, Any]:
    """This node's own settings, in the shape `merge` puts back."""
    full: dict[str, Any] = config.model_dump(mode="json")
    local: dict[str, Any] = {key: full[key] for key in LOCAL_TOP if key in full}
    local["control"] = {key: full["control"][key] for key in LOCAL_CONTROL}
    local["routers"] = {
        name: {**{key: router[key] for key in LOCAL_ROUTER},
               "track": {key: router["track"][key] for key in LOCAL_TRACK}}
        for name, router in _routers(full).items()
    }
    return local


def merge(shared: dict[str, Any], local: Config) -> Config:
    """The shared part from a peer with this node's local settings: a validated Config.

    Raises ConfigError (key paths and reasons) when the result is not valid here."""
    try:
        data = _merged_data(shared, local)
    except (AttributeError, KeyError, TypeError) as err:  # a peer's data, not our model's
        raise ConfigError.at("(top level)", f"malformed shared configuration: {err!r}") from err
    return load_dict(data)


def _merged_data(shared: dict[str, Any], local: Config) -> dict[str, Any]:
    data = copy.deepcopy(shared)
    mine = local_part(local)
    for key in LOCAL_TOP:
        if key in mine:
            data[key] = mine[key]
    data.setdefault("control", {}).update(mine["control"])
    problems = []
    for name, router in _routers(data).items():
        own = mine["routers"].get(name)
        if own is None:
            problems.append((f"cluster.virtual_routers.{name}",
                             "new on this node: add it here first with this node's interface and "
                             "priority (they are node-local and never synced)"))
            continue
        router.update({key: own[key] for key in LOCAL_ROUTER})
        router.setdefault("track", {}).update(own["track"])
    if problems:
        raise ConfigError(problems)
    return data


def _routers(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cluster = data.get("cluster")
    if not cluster:
        return {}
    routers: dict[str, dict[str, Any]] = cluster.get("virtual_routers") or {}
    return routers


# Keys whose values are keys: they must not cross the network readable. (A VRRP PASS
# password is not one: RFC 3768 sends it in clear in every advertisement anyway.)
SECRET_KEYS = frozenset({"secret"})


def shared_secrets(config: Config) -> list[str]:
    """Key paths of secrets in the shared part, e.g. ['pools.app.sticky.secret']."""
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if key in SECRET_KEYS and item:
                    found.append(where)
                else:
                    walk(item, where)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")

    walk(shared_part(config), "")
    return found
