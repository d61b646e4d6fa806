"""Pure pieces of the HTTP proxy: header edits, routes, stickiness."""

from __future__ import annotations

from fulcrum.balance.base import Backend
from fulcrum.proxy.http import headers as hdr
from fulcrum.proxy.http.routing import Router, RouteRule, host_without_port
from fulcrum.proxy.http.sticky import InsertCookie, cookie_values, route_from_request, set_cookie


def request(headers: list[tuple[bytes, bytes]], x_forwarded: bool = True, rfc7239: bool = False,
            preserve_host: bool = True, ip: bytes = b"192.0.2.1", upgrade: bool = False,
            chunked: bool = False) -> list[bytes]:
    edit = hdr.RequestEdit("http", x_forwarded, rfc7239, preserve_host)
    options = set().union(*(hdr.named_options(v) for n, v in headers if n.lower() == b"connection"))
    host = next((v for n, v in headers if n.lower() == b"host"), None)
    head = edit.head(b"GET", b"/x", headers, ip, host, b"10.0.0.5:8080", options, upgrade, chunked)
    assert head.startswith(b"GET /x HTTP/1.1\r\n") and head.endswith(b"\r\n\r\n")
    return head[:-4].split(b"\r\n")[1:]


def test_hop_by_hop_and_connection_named_fields_removed() -> None:
    headers = [(b"Host", b"a"), (b"Connection", b"keep-alive, X-Private"), (b"X-Private", b"1"),
               (b"Keep-Alive", b"timeout=5"), (b"TE", b"trailers"), (b"Transfer-Encoding", b"chunked"),
               (b"Upgrade", b"websocket"), (b"Proxy-Connection", b"keep-alive"), (b"Accept", b"*/*")]
    assert request(headers, x_forwarded=False) == [b"Host: a", b"Accept: */*"]
    assert request(headers, x_forwarded=False, upgrade=True, chunked=True) == [
        b"Host: a", b"Upgrade: websocket", b"Accept: */*", b"Transfer-Encoding: chunked", b"Connection: upgrade"]


def test_forwarded_for_appended_and_proto_host_replaced() -> None:
    headers = [(b"Host", b"shop"), (b"X-Forwarded-For", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2"),
               (b"X-Forwarded-Proto", b"https"), (b"X-Forwarded-Host", b"evil"), (b"Forwarded", b"for=1.1.1.1")]
    assert request(headers, rfc7239=True) == [
        b"Host: shop", b"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 192.0.2.1", b"X-Forwarded-Proto: http",
        b"X-Forwarded-Host: shop", b'Forwarded: for=1.1.1.1, for=192.0.2.1;proto=http;host="shop"']
    assert request([(b"Host", b"h")], x_forwarded=False, rfc7239=True, ip=b"2001:db8::1") == [
        b"Host: h", b'Forwarded: for="[2001:db8::1]";proto=http;host="h"']


def test_host_replaced_when_not_preserved_or_absent() -> None:
    assert request([(b"host", b"public"), (b"A", b"1")], x_forwarded=False, preserve_host=False) == [
        b"Host: 10.0.0.5:8080", b"A: 1"]
    assert request([(b"A", b"1")], x_forwarded=False) == [b"Host: 10.0.0.5:8080", b"A: 1"]


def response_fields(headers: list[tuple[bytes, bytes]], origins: tuple[bytes, ...] | None,
                    public_origin: bytes) -> tuple[list[bytes], bool, bytes | None]:
    """What ClientCore.response_head does with a head's field lines: `field_lines`, then
    `rewrite_lines` when a Location-like field is there and the origins are known."""
    lines = [name + b": " + value for name, value in headers]
    parts, has_length, codings, urls = hdr.field_lines(lines, True)
    if urls and origins is not None:
        hdr.rewrite_lines(parts, urls, origins, public_origin)
    return [part + b"\r\n" for part in parts[1:]], has_length, codings


def test_response_fields_rewrite_and_framing() -> None:
    origins = (b"http://10.0.0.5:8080",)
    headers = [(b"Location", b"http://10.0.0.5:8080/a?b"), (b"Content-Location", b"http://10.0.0.5:80801/x"),
               (b"URI", b"http://10.0.0.5:8080"), (b"Link", b"http://10.0.0.5:8080/"),
               (b"Connection", b"close, X-Internal"), (b"X-Internal", b"1"), (b"Transfer-Encoding", b"chunked"),
               (b"Keep-Alive", b"timeout=5")]
    lines, has_length, had_te = response_fields(headers, origins, b"https://www.example")
    assert b"".join(lines) == (b"Location: https://www.example/a?b\r\nContent-Location: http://10.0.0.5:80801/x\r\n"
                               b"URI: https://www.example\r\nLink: http://10.0.0.5:8080/\r\n")
    assert not has_length and had_te
    lines, has_length, had_te = response_fields([(b"Content-Length", b"3"), (b"Location", b"http://10.0.0.5:8080/")],
                                                    None, b"https://www.example")
    assert b"".join(lines) == b"Content-Length: 3\r\nLocation: http://10.0.0.5:8080/\r\n"
    assert has_length and not had_te


def test_router_prefers_host_then_longest_prefix() -> None:
    router = Router([RouteRule(None, b"/app", "app"), RouteRule(None, b"/app/admin", "admin"),
                     RouteRule(b"api.example", b"/", "api")], "default")
    assert router.pool_for(b"x", b"/app/admin/users") == "admin"
    assert router.pool_for(b"x", b"/app?x=1") == "app"
    assert router.pool_for(b"x", b"/apple") == "default"
    assert router.pool_for(b"API.Example:443", b"/app") == "api"
    assert router.pool_for(None, b"/") == "default"
    assert host_without_port(b"[::1]:8080") == b"[::1]" and host_without_port(b"::1") == b"::1"


def test_route_from_cookie_or_path_parameter() -> None:
    names = [b"JSESSIONID", b"jsessionid"]
    assert route_from_request(names, [b"a=b; JSESSIONID=abc.def.node2"], b"/") == b"node2"
    assert route_from_request(names, [], b"/app;jsessionid=xyz.node3?q=1") == b"node3"
    assert route_from_request(names, [b"JSESSIONID=noroute"], b"/") is None
    assert cookie_values([b'a="q"; b=2', b"a=3"], b"a") == [b"q", b"3"]


def test_insert_cookie_round_trip_and_forgery() -> None:
    backends = [Backend(key=f"10.0.0.{i}:80", address=f"10.0.0.{i}", port=80) for i in range(3)]
    backends[2].route = "r2"
    signer = InsertCookie("web", b"secret")
    for b in backends:
        assert signer.backend_for(signer.value_for(b), backends) is b
    other = InsertCookie("web", b"other-secret")
    assert other.backend_for(signer.value_for(backends[0]), backends) is None
    sid, mac = signer.value_for(backends[0]).split(b".")
    assert signer.backend_for(b"r2." + mac, backends) is None
    assert signer.backend_for(b"garbage", backends) is None
    # the same configuration on another node reads it the same way
    assert InsertCookie("web", b"secret").backend_for(signer.value_for(backends[1]), backends) is backends[1]
    assert set_cookie(b"R", b"v", secure=True, samesite="Lax", max_age=60) == \
        b"R=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60"
