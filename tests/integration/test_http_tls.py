"""TLS offload end to end: certificates generated at test time with openssl, chosen by SNI,
TLS 1.2+ only, X-Forwarded-Proto https, Secure cookies, the 308 redirect, renewal on reload."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fulcrum.config.load import load_dict
from fulcrum.node import Node
from tests.integration.test_http_proxy import config, run
from tests.integration.test_http_support import BackendProcess, Client, running

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def make_cert(directory: Path, name: str, sans: list[str]) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=" + ",".join(f"DNS:{s}" for s in sans)],
        check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("certs")
    return {"a": make_cert(d, "a.test", ["a.test", "*.a.test"]), "b": make_cert(d, "b.test", ["b.test"])}


@pytest.fixture(scope="module")
def backend() -> Iterator[BackendProcess]:
    with running("a") as procs:
        yield procs["a"]


def tls_config(backend: BackendProcess, certs: dict[str, tuple[Path, Path]], **pool: Any) -> dict[str, Any]:
    tls = {"certificates": [{"cert": str(c), "key": str(k)} for c, k in certs.values()]}
    return config([backend.port], http={"tls": tls}, pool=pool)


def client_context(certs: dict[str, tuple[Path, Path]]) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    for cert, _ in certs.values():
        ctx.load_verify_locations(str(cert))
    return ctx


def peer_cn(client: Client) -> str:
    cert = client.writer.get_extra_info("peercert")
    return dict(x[0] for x in cert["subject"])["commonName"]


def test_sni_chooses_the_certificate(backend: BackendProcess, certs: dict[str, tuple[Path, Path]]) -> None:
    async def scenario(port: int, node: Node) -> None:
        ctx = client_context(certs)
        for name, expected in (("a.test", "a.test"), ("b.test", "b.test"), ("www.a.test", "a.test")):
            c = await Client.connect(port, ssl=ctx, server_hostname=name)
            assert peer_cn(c) == expected
            r = await c.get("/headers", host=name)
            assert b"X-Forwarded-Proto: https\r\n" in r.body
            assert c.writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
            c.close()
        # an unknown name gets the default (first) certificate
        loose = ssl.create_default_context()
        loose.check_hostname = False
        loose.verify_mode = ssl.CERT_NONE
        c = await Client.connect(port, ssl=loose, server_hostname="other.test")
        assert c.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert (await c.get("/name")).body == b"a"
        c.close()

    run(tls_config(backend, certs), scenario)


def test_old_protocols_are_refused(backend: BackendProcess, certs: dict[str, tuple[Path, Path]]) -> None:
    async def scenario(port: int, node: Node) -> None:
        ctx = client_context(certs)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # offering TLS 1.1 is the point
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await Client.connect(port, ssl=ctx, server_hostname="a.test")
        # and the service still serves good clients
        c = await Client.connect(port, ssl=client_context(certs), server_hostname="a.test")
        assert (await c.get("/name")).status == 200
        c.close()

    run(tls_config(backend, certs), scenario)


def test_insert_cookie_is_secure_over_tls(backend: BackendProcess, certs: dict[str, tuple[Path, Path]]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port, ssl=client_context(certs), server_hostname="b.test")
        cookie = (await c.get("/name", host="b.test")).header(b"set-cookie")
        assert cookie is not None and b"; Secure" in cookie
        c.close()

    run(tls_config(backend, certs, sticky={"mode": "insert", "secret": "x"}), scenario)


def test_plain_service_redirects_to_https(backend: BackendProcess) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"GET /shop?item=1 HTTP/1.1\r\nHost: www.example\r\n\r\n")
        assert await c.closed()
        assert c.raw.startswith(b"HTTP/1.1 308 ")
        assert b"\r\nLocation: https://www.example/shop?item=1\r\n" in c.raw

    run(config([backend.port], http={"redirect_https": True}), scenario)


def test_certificate_renewed_on_reload(backend: BackendProcess, certs: dict[str, tuple[Path, Path]],
                                       tmp_path: Path) -> None:
    live_cert, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(certs["a"][0], live_cert)
    shutil.copy(certs["a"][1], live_key)
    data = config([backend.port], http={"tls": {"certificates": [
        {"cert": str(live_cert), "key": str(live_key), "names": ["a.test", "b.test"]}]}})
    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE

    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port, ssl=loose, server_hostname="a.test")
        before = c.writer.get_extra_info("ssl_object").getpeercert(True)
        shutil.copy(certs["b"][0], live_cert)
        shutil.copy(certs["b"][1], live_key)
        await node.reload(load_dict(data))
        after_c = await Client.connect(port, ssl=loose, server_hostname="a.test")
        after = after_c.writer.get_extra_info("ssl_object").getpeercert(True)
        assert after != before and after == ssl.PEM_cert_to_DER_cert(certs["b"][0].read_text())
        assert (await c.get("/name")).body == b"a"  # the established connection lives on
        c.close()
        after_c.close()
        await asyncio.sleep(0)

    run(data, scenario)


def test_tls_to_servers_with_verification(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "server.internal", ["server.internal"])
    other_ca, _ = make_cert(tmp_path, "other", ["other"])
    backend = BackendProcess("s", tls=(str(cert), str(key)))
    try:
        async def scenario(port: int, node: Node) -> None:
            c = await Client.connect(port)
            r = await c.get("/headers")
            assert r.status == 200 and b"Host: test\r\n" in r.body
            c.close()

        run(config([backend.port], pool={"tls": True, "tls_ca": str(cert), "tls_server_name": "server.internal"}),
            scenario)

        async def refused(port: int, node: Node) -> None:
            c = await Client.connect(port)
            assert (await c.get("/name")).status == 503  # the certificate does not verify: no usable server
            c.close()

        run(config([backend.port], pool={"tls": True, "tls_ca": str(other_ca), "tls_server_name": "server.internal"}),
            refused)
    finally:
        backend.stop()


def test_tls11_is_refused_with_a_protocol_version_alert(backend: BackendProcess,
                                                        certs: dict[str, tuple[Path, Path]]) -> None:
    """Issue 7 item 14: the client is told why (RFC 8446 §6.2 protocol_version), not dropped."""

    async def scenario(port: int, node: Node) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # offering TLS 1.1 is the point
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with pytest.raises(ssl.SSLError) as refused:
            await Client.connect(port, ssl=ctx, server_hostname="a.test")
        assert "PROTOCOL_VERSION" in str(refused.value).upper()

    run(tls_config(backend, certs), scenario)


async def _tls_by_hand(port: int, certs: dict[str, tuple[Path, Path]]) -> tuple[Any, Any, Any, Any, Any]:
    """A TLS client over memory BIOs, so the test can send close_notify and keep reading."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context(certs).wrap_bio(incoming, outgoing, server_hostname="a.test")
    async with asyncio.timeout(10):
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                writer.write(outgoing.read())
                incoming.write(await reader.read(65536))
    writer.write(outgoing.read())
    return reader, writer, incoming, outgoing, tls


def test_tls_half_close_pipelined_requests_then_close_notify_are_answered(
        backend: BackendProcess, certs: dict[str, tuple[Path, Path]]) -> None:
    """Issue 7 item 14: as over plain HTTP, a client that sends two pipelined requests and then
    closes its sending side (close_notify, RFC 8446 §6.1) gets both answers."""

    async def scenario(port: int, node: Node) -> None:
        reader, writer, incoming, outgoing, tls = await _tls_by_hand(port, certs)
        tls.write(b"GET /slow?s=0.3 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /name HTTP/1.1\r\nHost: a.test\r\n\r\n")
        with pytest.raises(ssl.SSLWantReadError):
            tls.unwrap()  # our close_notify goes out; theirs is not awaited
        writer.write(outgoing.read())
        plain = b""
        async with asyncio.timeout(10):
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                incoming.write(data)
                try:
                    while chunk := tls.read(65536):
                        plain += chunk
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    pass
        assert plain.count(b"HTTP/1.1 200 ") == 2 and plain.endswith(b"\r\n\r\na")
        writer.close()

    run(tls_config(backend, certs), scenario)
