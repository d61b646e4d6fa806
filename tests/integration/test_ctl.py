"""`fulcrum ctl` through the control socket reaches the one command table of a running node."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import tomli_w

from tests.integration.helpers import Backends, ask_name, make_node, service_config
from tests.support import FULCRUM, free_port


async def ctl(*words: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        FULCRUM, "ctl", *words, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_ctl_drains_reweights_and_reports_through_the_socket(tmp_path: Path) -> None:
    sock = str(tmp_path / "control.sock")

    async def scenario() -> None:
        backends = Backends()
        ports = [await backends.start(n) for n in ("a", "b")]
        port = free_port()
        data = service_config([f"127.0.0.1:{port}"], ports)
        data["control"] = {"socket": sock}
        node = make_node(data)
        await node.start()
        try:
            assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600  # only its owner may steer
            code, out, err = await ctl("-s", sock, "server.drain", f"127.0.0.1:{ports[0]}")
            assert code == 0, err
            assert {await ask_name("127.0.0.1", port) for _ in range(4)} == {"b"}
            assert node.config.pools["p"].servers[0].state == "drain"  # a config change: syncable

            code, out, err = await ctl("-s", sock, "server.enable", f"server=127.0.0.1:{ports[0]}")
            assert code == 0, err
            assert {await ask_name("127.0.0.1", port) for _ in range(4)} == {"a", "b"}

            code, out, _ = await ctl("-s", sock, "servers")
            assert code == 0 and {s["port"] for s in json.loads(out)} == set(ports)

            code, _, err = await ctl("-s", sock, "server.weight", f"127.0.0.1:{ports[0]}", "-3")
            assert code == 1 and "weight" in err  # refused with the reason, nothing changed
            assert node.config.pools["p"].servers[0].weight == 1
            code, _, err = await ctl("-s", sock, "no.such.command")
            assert code == 2 and "unknown command" in err
        finally:
            await node.stop(drain=0)
            await backends.close()

    asyncio.run(scenario())


def test_ctl_without_a_node_says_how_to_give_one(tmp_path: Path) -> None:
    missing = tmp_path / "control.sock"
    code, _, err = asyncio.run(ctl("-s", str(missing), "status"))
    assert code == 1 and "no control socket there" in err and "-s PATH" in err
    off = tmp_path / "off.toml"
    data = service_config(["127.0.0.1:1"], [2])
    data["control"] = {"socket": "off"}
    off.write_text(tomli_w.dumps(data))
    code, _, err = asyncio.run(ctl("-c", str(off), "status"))
    assert code == 2 and "control socket off" in err
