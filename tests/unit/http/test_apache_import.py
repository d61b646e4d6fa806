"""The Apache importer: mod_proxy_balancer blocks into the one model, with warnings."""

from __future__ import annotations

import pytest

from fulcrum.config.load import load_dict
from fulcrum.importers.apache import convert, parse

TALK = """
# two application servers behind mod_proxy_balancer
<VirtualHost *:8080>
    ServerName www.example.com
    ProxyRequests Off
    ProxyPreserveHost On
    <Proxy balancer://mycluster>
        BalancerMember http://10.0.0.50:8080 route=node1 loadfactor=1
        BalancerMember http://10.0.0.51:8080 route=node2 loadfactor=2 retry=30
        BalancerMember http://10.0.0.52:8080 status=+H
        BalancerMember http://10.0.0.53:8080 status=+D lbset=1
        ProxySet lbmethod=bytraffic stickysession=JSESSIONID|jsessionid nofailover=On
    </Proxy>
    ProxyPass /balancer-manager !
    ProxyPass / balancer://mycluster/
    ProxyPassReverse / balancer://mycluster/
    <Location /balancer-manager>
        SetHandler balancer-manager
    </Location>
</VirtualHost>
"""


def test_talk_example_maps_every_balancer_setting() -> None:
    data, warnings = convert(TALK)
    config = load_dict(data)
    service = config.services["http_8080"]
    assert service.mode == "http" and str(service.listen[0]) == "0.0.0.0:8080"
    assert service.pool == "mycluster" and service.http.preserve_host and service.http.rewrite_location
    pool = config.pools["mycluster"]
    assert pool.scheduler == "bytraffic" and pool.blacklist == 30
    assert pool.sticky.mode == "cookie" and pool.sticky.cookie == "JSESSIONID|jsessionid" and pool.sticky.nofailover
    servers = {s.address: s for s in pool.servers}
    assert servers["10.0.0.50"].route == "node1" and servers["10.0.0.51"].weight == 2
    assert servers["10.0.0.52"].backup and servers["10.0.0.53"].state == "disabled"
    assert servers["10.0.0.53"].lbset == 1
    assert any("line 14" in w and "exclusion" in w for w in warnings)
    assert any("balancer-manager" in w for w in warnings)
    assert len(warnings) == 2


def test_several_virtual_hosts_become_host_routes_and_direct_targets_pools() -> None:
    text = """
    <VirtualHost *:80>
        ServerName shop.example
        ServerAlias www.shop.example
        ProxyPass / balancer://shop/ stickysession=ROUTEID
        ProxyPass /static http://10.0.0.9:8000/static
        <Proxy balancer://shop>
            BalancerMember http://10.0.0.1:80 route=a
        </Proxy>
    </VirtualHost>
    <VirtualHost *:80>
        ServerName api.example
        ProxyPass /v1 http://10.0.0.7/
        DocumentRoot /var/www
    </VirtualHost>
    """
    data, warnings = convert(text)
    config = load_dict(data)
    service = config.services["http_80"]
    assert service.pool == "shop" and not service.http.preserve_host  # Apache's default is Off
    routes = {(r.host, r.path): r.pool for r in service.http.routes}
    assert routes == {("shop.example", "/"): "shop", ("www.shop.example", "/"): "shop",
                      ("shop.example", "/static"): "10_0_0_9_8000", ("www.shop.example", "/static"): "10_0_0_9_8000",
                      ("api.example", "/v1"): "10_0_0_7_80"}
    assert config.pools["shop"].sticky.cookie == "ROUTEID"
    assert any("/v1" in w and "path" in w for w in warnings)  # /v1 -> / would be stripped by Apache
    assert any("documentroot" in w.lower() for w in warnings)


def test_unknown_directives_and_options_are_warned_not_dropped() -> None:
    text = """
    <VirtualHost 127.0.0.1:8081>
        ProxyPass / balancer://b/ flushpackets=on
        <Proxy balancer://b>
            BalancerMember http://10.0.0.1:80 smax=5 status=+I
            ProxySet lbmethod=heartbeat growth=3
        </Proxy>
        Header set X-Frame-Options DENY
    </VirtualHost>
    """
    data, warnings = convert(text)
    load_dict(data)
    text_of = "\\n".join(warnings)
    for fragment in ("flushpackets", "smax", "flag 'i'", "heartbeat", "growth", "header set"):
        assert fragment in text_of.lower(), fragment


def test_line_continuations_and_errors() -> None:
    directives = parse("ProxyPass / \\\n   balancer://x/\n")
    assert directives[0].name == "proxypass" and directives[0].args == ["/", "balancer://x/"]
    with pytest.raises(ValueError, match="not closed"):
        parse("<VirtualHost *:80>\nProxyPass / http://a/\n")
    with pytest.raises(ValueError, match="nothing to import"):
        convert("ServerName x\n")
