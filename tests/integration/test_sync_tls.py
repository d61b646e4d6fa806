"""Config sync over mutual TLS: certificates from a CA made at test time with openssl."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from fulcrum.cluster.sync_state import canonical, signed
from fulcrum.control.commands import execute
from tests.integration.test_sync import SECRET, Pair, both_started, run, weight
from tests.support import wait_until

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    openssl("req", "-x509", *EC, "-keyout", key, "-out", cert, "-subj", f"/CN={name}")
    return cert, key


def make_node_cert(directory: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    openssl("req", "-x509", *EC, "-keyout", key, "-out", cert, "-subj", f"/CN={name}",
            "-CA", ca[0], "-CAkey", ca[1], "-addext", "basicConstraints=critical,CA:FALSE")
    return cert, key


def test_sync_over_mutual_tls_refuses_peers_without_a_cluster_certificate(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs, "cluster-ca")
    nodes = {name: make_node_cert(certs, name, ca) for name in ("lb0", "lb1")}
    stranger = make_node_cert(certs, "stranger", make_ca(certs, "other-ca"))

    def tls(name: str) -> dict[str, str]:
        cert, key = nodes[name]
        return {"tls_cert": str(cert), "tls_key": str(key), "tls_ca": str(ca[0])}

    def client_with(cert: tuple[Path, Path]) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(ca[0]))
        context.check_hostname = False
        context.load_cert_chain(*map(str, cert))
        return context

    async def answer(port: int, client: ssl.SSLContext | None) -> bytes:
        """lb1's reply to a signed hello; b"" when it refused the connection."""
        hello = signed({"type": "hello", "node": "x", "time": time.time(), "nonce": secrets.token_hex(16),
                        "version": 0, "vnode": ""},
                       SECRET.encode())
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
            writer.write(canonical(hello) + b"\n")
            await writer.drain()
            async with asyncio.timeout(5):
                line = await reader.readline()
            writer.close()
        except (OSError, ssl.SSLError):
            return b""
        return line

    async def scenario(pair: Pair) -> None:
        lb0, lb1 = await both_started(pair)
        assert lb1.sync.tls_server is not None
        await execute(lb0, "server.weight", {"server": "0", "weight": 8})
        await wait_until(lambda: weight(lb1) == 8)

        port = pair.sync_port["lb1"]
        assert b'"type":"hello"' in await answer(port, client_with(nodes["lb0"]))
        assert await answer(port, None) == b""  # plain TCP to a TLS port
        assert await answer(port, client_with(stranger)) == b""  # another CA's certificate
        assert weight(lb1) == 8

    run(tmp_path, scenario, lambda tmp: Pair(tmp, extra=tls))
