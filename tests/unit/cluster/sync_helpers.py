"""A two-node configuration pair for config sync tests: same service, own local settings."""

from __future__ import annotations

import copy
from typing import Any

SECRET = "a shared secret of the two nodes"


def node_data(name: str, priority: int, interface: str = "eth0", port: int = 8080,
              sync_port: int = 3637, peer_port: int = 3637) -> dict[str, Any]:
    """lb0/lb1 style: one service, one pool, one virtual router, a sync section."""
    return copy.deepcopy({
        "services": {"web": {"listen": [f"127.0.0.1:{port}"], "pool": "web"}},
        "pools": {"web": {"servers": ["127.0.0.1:9001", "127.0.0.1:9002"],
                          "health": {"kind": "none"}}},
        "workers": 1,
        "log": {"level": "debug" if name == "lb0" else "info"},
        "control": {"pidfile": f"/run/{name}.pid"},
        "cluster": {"virtual_routers": {"v4": {
            "vrid": 51, "interface": interface, "priority": priority,
            "vips": ["198.18.0.100/24"],
            "track": {"interfaces": [{"name": interface, "weight": -20}],
                      "pools": [{"pool": "web", "weight": -30}]},
        }}},
        "sync": {"node": name, "listen": f"127.0.0.1:{sync_port}",
                 "peers": [f"127.0.0.1:{peer_port}"], "secret": SECRET},
    })
