"""Pure pieces of the HTTP proxy: header edits, routes, stickiness."""

from __future__ import annotations

from fulcrum.balance.base import Backend
from fulcrum.proxy.http import headers as hdr
from fulcrum.proxy.http.routing import Router, RouteRule, host_without_port
from fulcrum.proxy.http.sticky import InsertCookie, cookie_values, route_from_request, set_cookie


def test_hop_by_hop_and_connection_named_fields_removed() -> None:
    headers = [(b"Host", b"a"), (b"Connection", b"keep-alive, X-Private"), (b"X-Private", b"1"),
               (b"Keep-Alive", b"timeout=5"), (b"TE", b"trailers"), (b"Transfer-Encoding", b"chunked"),
               (b"Upgrade", b"websocket"), (b"Proxy-Connection", b"keep-alive"), (b"Accept", b"*/*")]
    assert hdr.strip_hop_by_hop(headers) == [(b"Host", b"a"), (b"Accept", b"*/*")]
    assert (b"Upgrade", b"websocket") in hdr.strip_hop_by_hop(headers, keep_upgrade=True)


def test_forwarded_for_appended_and_proto_host_replaced() -> None:
    headers = [(b"X-Forwarded-For", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2"),
               (b"X-Forwarded-Proto", b"https"), (b"X-Forwarded-Host", b"evil")]
    out = hdr.add_forwarded(headers, "192.0.2.1", "http", b"shop", x_forwarded=True, rfc7239=True)
    assert out == [(b"X-Forwarded-For", b"1.1.1.1, 2.2.2.2, 192.0.2.1"), (b"X-Forwarded-Proto", b"http"),
                   (b"X-Forwarded-Host", b"shop"), (b"Forwarded", b'for=192.0.2.1;proto=http;host="shop"')]
    v6 = hdr.add_forwarded([], "2001:db8::1", "https", None, x_forwarded=False, rfc7239=True)
    assert v6 == [(b"Forwarded", b'for="[2001:db8::1]";proto=https')]


def test_location_rewritten_only_for_the_server_origin() -> None:
    origins = [b"http://10.0.0.5:8080"]
    headers = [(b"Location", b"http://10.0.0.5:8080/a?b"), (b"Content-Location", b"http://10.0.0.5:80801/x"),
               (b"URI", b"http://10.0.0.5:8080"), (b"Link", b"http://10.0.0.5:8080/")]
    out = hdr.rewrite_locations(headers, origins, b"https://www.example")
    assert out == [(b"Location", b"https://www.example/a?b"), (b"Content-Location", b"http://10.0.0.5:80801/x"),
                   (b"URI", b"https://www.example"), (b"Link", b"http://10.0.0.5:8080/")]


def test_replace_keeps_position() -> None:
    out = hdr.replace([(b"a", b"1"), (b"host", b"x"), (b"HOST", b"y")], b"Host", b"z")
    assert out == [(b"a", b"1"), (b"Host", b"z")]


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
