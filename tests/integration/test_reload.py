"""Safe reloads: the whole new state is built first (certificates, files, binds), a failure
changes nothing and says why; runtime changes survive a reload of the file unless the file
changed the same setting; log settings apply; `fulcrum ctl reload` returns the result."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict, load_file
from fulcrum.control.commands import execute
from fulcrum.node import Node
from fulcrum.proxy.loop import loop_factory
from fulcrum.reload import ReloadError, merge_runtime
from tests.integration.helpers import Backends, ask_name, service_config
from tests.integration.test_ctl import ctl
from tests.integration.test_http_support import BackendProcess, Client, running
from tests.integration.test_http_tls import make_cert
from tests.support import free_port


def file_node(path: Path, data: dict[str, Any]) -> Node:
    """A node whose source is a file, as `fulcrum run -c` makes it."""
    path.write_text(tomli_w.dumps(data))
    node = Node(load_file(path))
    node.loader = lambda: load_file(path)
    node.config_path = str(path)
    return node


def test_runtime_drain_survives_a_reload_the_file_did_not_touch(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "f.toml"

    async def scenario() -> None:
        backends = Backends()
        ports = [await backends.start(n) for n in ("a", "b", "c")]
        port = free_port()
        data = service_config([f"127.0.0.1:{port}"], ports[:2])
        node = file_node(cfg, data)
        await node.start()
        try:
            await execute(node, "server.drain", {"server": f"127.0.0.1:{ports[0]}"})
            await execute(node, "server.weight", {"server": f"127.0.0.1:{ports[1]}", "weight": 3})
            # the file gains a server; it says nothing new about the drained one
            data["pools"]["p"]["servers"].append(f"127.0.0.1:{ports[2]}")
            cfg.write_text(tomli_w.dumps(data))
            with caplog.at_level(logging.INFO, logger="fulcrum"):
                result = await execute(node, "reload")
            servers = node.config.pools["p"].servers
            assert [s.port for s in servers] == ports
            assert servers[0].state == "drain" and servers[1].weight == 3
            assert any("pools.p.servers" in note and "drain" in note for note in result["runtime_kept"])
            assert {await ask_name("127.0.0.1", port) for _ in range(6)} == {"b", "c"}
            assert "runtime change kept" in caplog.text

            # now the file itself sets the weight the operator changed: the file wins, said in the log
            data["pools"]["p"]["servers"][1] = {"address": "127.0.0.1", "port": ports[1], "weight": 5}
            cfg.write_text(tomli_w.dumps(data))
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="fulcrum"):
                result = await execute(node, "reload")
            assert node.config.pools["p"].servers[1].weight == 5
            assert node.config.pools["p"].servers[0].state == "drain"  # still untouched by the file
            assert any("weight" in note and "3" in note and "5" in note for note in result["runtime_overridden"])
            assert "the file overrides a runtime change" in caplog.text
        finally:
            await node.stop(drain=0)
            await backends.close()

    asyncio.run(scenario())


def test_merge_is_three_way_per_setting() -> None:
    def cfg(*servers: dict[str, Any], level: str = "info") -> Any:
        return load_dict({"services": {"s": {"listen": ["127.0.0.1:1"], "pool": "p"}},
                          "pools": {"p": {"servers": list(servers)}}, "log": {"level": level}})

    a = {"address": "10.0.0.1", "port": 80}
    b = {"address": "10.0.0.2", "port": 80}
    base = cfg(a, b)
    running = cfg(dict(a, state="drain"), b)  # drained at runtime
    merge = merge_runtime(base, running, cfg(a, dict(b, weight=2), level="debug"))
    assert merge.config.pools["p"].servers[0].state == "drain"
    assert merge.config.pools["p"].servers[1].weight == 2 and merge.config.log.level == "debug"
    assert merge.overridden == []
    # a server removed at runtime stays removed unless the file changes it
    merge = merge_runtime(base, cfg(a), cfg(a, b))
    assert [s.address for s in merge.config.pools["p"].servers] == ["10.0.0.1"]
    # the file disables the drained server: the file wins, and it is reported
    merge = merge_runtime(base, running, cfg(dict(a, state="disabled"), b))
    assert merge.config.pools["p"].servers[0].state == "disabled"
    assert len(merge.overridden) == 1 and "drain" in merge.overridden[0]
    # nothing changed at runtime: the file as it is
    assert merge_runtime(base, base, running).config == running


def test_bad_certificate_changes_nothing_and_says_why(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    good_cert, good_key = make_cert(tmp_path, "a.test", ["a.test"])
    cfg = tmp_path / "web.toml"
    port = free_port()
    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE

    async def scenario(backends: dict[str, BackendProcess]) -> None:
        data: dict[str, Any] = {
            "services": {"web": {"listen": [f"127.0.0.1:{port}"], "pool": "p", "mode": "http",
                                 "http": {"tls": {"certificates": [{"cert": str(good_cert), "key": str(good_key)}]}}}},
            "pools": {"p": {"servers": [f"127.0.0.1:{backends['a'].port}"], "health": {"kind": "none"}}},
        }
        node = file_node(cfg, data)
        await node.start()
        try:
            # a new server list and a certificate that is not a certificate, in one change
            broken = tmp_path / "broken.crt"
            broken.write_text("not a certificate\n")
            data["pools"]["p"]["servers"] = [f"127.0.0.1:{backends['b'].port}"]
            data["services"]["web"]["http"]["tls"]["certificates"][0]["cert"] = str(broken)
            cfg.write_text(tomli_w.dumps(data))
            with caplog.at_level(logging.ERROR, logger="fulcrum"), pytest.raises(ReloadError) as err:
                await execute(node, "reload")
            assert "services.web.http.tls.certificates[0]" in str(err.value)
            assert "broken.crt" in caplog.text and "reload rejected" in caplog.text
            # nothing changed: the old pool serves, the old certificate answers
            assert [s.port for s in node.config.pools["p"].servers] == [backends["a"].port]
            c = await Client.connect(port, ssl=loose, server_hostname="a.test")
            assert (await c.get("/name")).body == b"a"
            der = c.writer.get_extra_info("ssl_object").getpeercert(True)
            assert der == ssl.PEM_cert_to_DER_cert(good_cert.read_text())
            c.close()
            # an access log in a directory that does not exist: refused the same way
            data["services"]["web"]["http"]["tls"]["certificates"][0]["cert"] = str(good_cert)
            data["log"] = {"access": str(tmp_path / "missing" / "access.log")}
            cfg.write_text(tomli_w.dumps(data))
            with pytest.raises(ReloadError, match="log.access"):
                await execute(node, "reload")
            assert [s.port for s in node.config.pools["p"].servers] == [backends["a"].port]
        finally:
            await node.stop(drain=0)

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    with running("ab") as procs, asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(scenario(procs))


def test_port_in_use_on_reload_changes_nothing(tmp_path: Path) -> None:
    import socket

    cfg = tmp_path / "f.toml"

    async def scenario() -> None:
        backends = Backends()
        ports = [await backends.start(n) for n in ("a", "b")]
        port = free_port()
        data = service_config([f"127.0.0.1:{port}"], ports[:1])
        node = file_node(cfg, data)
        await node.start()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            try:
                data["services"]["svc"]["listen"].append(f"127.0.0.1:{taken.getsockname()[1]}")
                data["pools"]["p"]["servers"] = [f"127.0.0.1:{ports[1]}"]
                cfg.write_text(tomli_w.dumps(data))
                with pytest.raises(ReloadError, match="address already in use"):
                    await execute(node, "reload")
                assert await ask_name("127.0.0.1", port) == "a"
            finally:
                await node.stop(drain=0)
                await backends.close()

    asyncio.run(scenario())


def test_log_settings_apply_on_reload(tmp_path: Path) -> None:
    cfg = tmp_path / "f.toml"
    first, second = tmp_path / "one.log", tmp_path / "two.log"

    async def scenario() -> None:
        backends = Backends()
        ports = [await backends.start("a")]
        data = service_config([f"127.0.0.1:{free_port()}"], ports)
        data["log"] = {"file": str(first), "level": "info"}
        node = file_node(cfg, data)
        from fulcrum.logs import setup_logging

        setup_logging(node.config.log)
        await node.start()
        try:
            data["log"] = {"file": str(second), "level": "warning", "format": "json"}
            cfg.write_text(tomli_w.dumps(data))
            await execute(node, "reload")
            logging.getLogger("fulcrum.test").warning("after the reload")
            logging.getLogger("fulcrum.test").info("not at level warning")
            text = second.read_text()
            assert '"message": "after the reload"' in text and "not at level" not in text
            assert "after the reload" not in first.read_text()
        finally:
            await node.stop(drain=0)
            await backends.close()
            logging.getLogger("fulcrum").handlers.clear()

    asyncio.run(scenario())


def test_ctl_reload_answers_with_the_result_or_the_reason(tmp_path: Path) -> None:
    cfg, sock = tmp_path / "f.toml", str(tmp_path / "control.sock")

    async def scenario() -> None:
        backends = Backends()
        ports = [await backends.start(n) for n in ("a", "b")]
        data = service_config([f"127.0.0.1:{free_port()}"], ports[:1])
        data["control"] = {"socket": sock}
        node = file_node(cfg, data)
        await node.start()
        try:
            data["pools"]["p"]["servers"].append(f"127.0.0.1:{ports[1]}")
            cfg.write_text(tomli_w.dumps(data))
            code, out, err = await ctl("-s", sock, "reload")
            assert code == 0, err
            assert '"reloaded": true' in out and '"pools": 1' in out
            assert len(node.config.pools["p"].servers) == 2
            data["pools"]["p"]["servers"].append("127.0.0.1:99999")
            cfg.write_text(tomli_w.dumps(data))
            code, out, err = await ctl("-s", sock, "reload")
            assert code == 1 and "pools.p.servers[2]" in err  # the reason, and nothing changed
            assert len(node.config.pools["p"].servers) == 2
        finally:
            await node.stop(drain=0)
            await backends.close()

    asyncio.run(scenario())


def test_a_node_without_a_file_says_so() -> None:
    async def scenario() -> None:
        node = Node(load_dict(service_config([f"127.0.0.1:{free_port()}"], [1])))
        with pytest.raises(ConfigError, match="no file to re-read"):
            await node.reload_from_source()

    asyncio.run(scenario())
