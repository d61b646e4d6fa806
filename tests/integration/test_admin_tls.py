"""The admin listener behind TLS (admin.tls): HTTPS only, Secure session cookies; and a
listener that cannot bind leaves the node serving, with the reason in the log."""

from __future__ import annotations

import http.cookiejar
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.admin_lab import PASSWORD, USER, AdminLab, wait_for


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_admin_with_secure_cookies(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=fulcrum-admin", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30)
    lab = AdminLab(tmp_path)
    admin = lab.config()["admin"]
    lab.start(admin={**admin, "tls": {"cert": str(cert), "key": str(key)}})
    try:
        context = ssl.create_default_context(cafile=str(cert))
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                             urllib.request.HTTPCookieProcessor(jar))
        base = f"https://127.0.0.1:{lab.admin_port}"
        data = f"user={USER}&password={PASSWORD.replace(' ', '+')}".encode()
        with opener.open(urllib.request.Request(base + "/login", data=data), timeout=30) as answer:
            assert answer.status == 200 and answer.url == base + "/"  # followed the redirect, logged in
        (cookie,) = list(jar)
        assert cookie.secure and cookie.has_nonstandard_attr("HttpOnly")
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):  # not a known CA
            urllib.request.urlopen(base + "/login", timeout=10, context=ssl.create_default_context())
        with socket.create_connection(("127.0.0.1", lab.admin_port), timeout=5) as plain:
            plain.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not plain.recv(100).startswith(b"HTTP/1.1 200")  # no plain HTTP on the TLS port
    finally:
        lab.stop()


def test_an_admin_address_in_use_is_logged_and_the_node_serves_on(tmp_path: Path) -> None:
    lab = AdminLab(tmp_path)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", lab.admin_port))
    blocker.listen()
    try:
        lab.start(wait=False)
        wait_for(lambda: "admin plane not started" in lab.log_text(), timeout=30)
        assert "cannot listen on 127.0.0.1:" in lab.log_text()
        wait_for(lambda: _serves(lab), timeout=10)
        assert "Traceback" not in lab.log_text()
    finally:
        blocker.close()
        lab.stop()


def _serves(lab: AdminLab) -> bool:
    try:
        return lab.through_proxy() in ("s0", "s1")
    except OSError:
        return False
