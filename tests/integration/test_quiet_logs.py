"""Nothing stray: no asyncio line per TLS connection (it reached stderr through the
"asyncio" logger), no `None` for a client address, one warning per kind during an outage."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
from pathlib import Path

import pytest

from fulcrum.config.load import load_dict
from fulcrum.node import Node
from fulcrum.proxy.loop import loop_factory
from tests.integration.helpers import refused, service_config
from tests.integration.test_http_support import Client, running
from tests.integration.test_http_tls import make_cert
from tests.support import free_port, wait_until


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_connections_leave_no_asyncio_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cert, key = make_cert(tmp_path, "a.test", ["a.test"])
    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    port = free_port()

    async def scenario(backend_port: int) -> None:
        node = Node(load_dict({
            "services": {"web": {"listen": [f"127.0.0.1:{port}"], "pool": "p", "mode": "http",
                                 "http": {"tls": {"certificates": [{"cert": str(cert), "key": str(key)}]}}}},
            "pools": {"p": {"servers": [f"127.0.0.1:{backend_port}"], "health": {"kind": "none"}}}}))
        await node.start()
        try:
            for _ in range(3):
                c = await Client.connect(port, ssl=loose, server_hostname="a.test")
                assert (await c.get("/name")).body == b"a"
                c.writer.write_eof() if c.writer.can_write_eof() else None
                c.close()
                await wait_until(lambda: node.connections == 0, what="the TLS connection closed at the node")
        finally:
            await node.stop(drain=0)

    with caplog.at_level(logging.DEBUG), running("a") as procs, \
            asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(scenario(procs["a"].port))
    stray = [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.WARNING]
    assert stray == []


def test_outage_warnings_name_the_client_and_are_not_repeated(caplog: pytest.LogCaptureFixture) -> None:
    from fulcrum import logs

    dead = free_port()
    port = free_port()
    data = service_config([f"127.0.0.1:{port}"], [dead])
    data["services"]["outage"] = data["services"].pop("svc")  # a kind of its own for the throttle
    data["pools"]["p"]["retries"] = 0

    async def scenario() -> None:
        node = Node(load_dict(data))
        await node.start()
        try:
            for _ in range(5):
                assert await refused("127.0.0.1", port)
        finally:
            await node.stop(drain=0)

    logs.throttle.interval = 60.0  # nothing repeats within this test
    with caplog.at_level(logging.INFO, logger="fulcrum"):
        asyncio.run(scenario())
    failed = [r.getMessage() for r in caplog.records if "connect to" in r.getMessage()]
    assert len(failed) == 1, failed
    assert "for 127.0.0.1:" in failed[0] and "None" not in failed[0]
    # the server is blacklisted after its failed connect: the 4 other clients find no server,
    # which is said once, with the client's address
    none_left = [r.getMessage() for r in caplog.records if "no server available" in r.getMessage()]
    assert len(none_left) == 1 and "for 127.0.0.1:" in none_left[0], none_left
    assert not any("None" in r.getMessage() for r in caplog.records if "service outage" in r.getMessage())
