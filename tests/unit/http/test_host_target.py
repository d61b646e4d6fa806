"""Host values and absolute-form request targets (RFC 9112 §3.2, §3.2.2; issue 7 item 12)."""

from __future__ import annotations

import pytest

from fulcrum.proxy.http.headers import TargetError, absolute_form, valid_host


@pytest.mark.parametrize("host", [b"www.example", b"www.example:8080", b"[::1]", b"[::1]:443", b"10.0.0.1:80",
                                  b"", b"a%2Eb", b"a,b", b"x:", b"[v1.fe80::a+en1]"])
def test_valid_hosts(host: bytes) -> None:
    assert valid_host(host)


@pytest.mark.parametrize("host", [b"a@b", b"a b", b"a, b", b"a:b:c", b"[::1", b"a\tb", b"a/b", b"a%2", b"h:8o"])
def test_invalid_hosts(host: bytes) -> None:
    assert not valid_host(host)


@pytest.mark.parametrize(("target", "expected"), [
    (b"http://a.example/x?y", (b"a.example", b"/x?y")),
    (b"HTTPS://a.example:8443", (b"a.example:8443", b"/")),
    (b"http://a.example?q", (b"a.example", b"/?q")),
    (b"http://[::1]:80/p", (b"[::1]:80", b"/p")),
    (b"/origin/form", None),
])
def test_absolute_form_split(target: bytes, expected: tuple[bytes, bytes] | None) -> None:
    assert absolute_form(target) == expected


@pytest.mark.parametrize("target", [b"http://u@a.example/", b"http:///x", b"ftp://a.example/", b"http://:80/",
                                    b"http://a b/"])
def test_absolute_form_refused(target: bytes) -> None:
    with pytest.raises(TargetError):
        absolute_form(target)
