"""The talk's mod_proxy_balancer example, converted by `fulcrum import apache FILE -o OUT` and
run as is with `fulcrum run -c OUT` against real backends."""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from pathlib import Path

from tests.integration.test_http_support import BackendProcess, Client
from tests.support import FULCRUM, FulcrumProcess, free_port

TALK = """
<VirtualHost 127.0.0.1:{port}>
    ServerName www.example.com
    ProxyRequests Off
    ProxyPreserveHost On
    <Proxy balancer://mycluster>
        BalancerMember http://127.0.0.1:{a} route=node1 loadfactor=1
        BalancerMember http://127.0.0.1:{b} route=node2 loadfactor=2
        BalancerMember http://127.0.0.1:{c} status=+H
        ProxySet lbmethod=byrequests stickysession=JSESSIONID|jsessionid
    </Proxy>
    ProxyPass /balancer-manager !
    ProxyPass / balancer://mycluster/
    ProxyPassReverse / balancer://mycluster/
</VirtualHost>
"""


def test_talk_example_converts_and_runs(tmp_path: Path) -> None:
    backends = {name: BackendProcess(name, route=route)
                for name, route in (("a", "node1"), ("b", "node2"), ("c", "standby"))}
    port = free_port()
    conf = tmp_path / "httpd.conf"
    conf.write_text(TALK.format(port=port, a=backends["a"].port, b=backends["b"].port, c=backends["c"].port))
    out = tmp_path / "fulcrum.toml"
    converted = subprocess.run([FULCRUM, "import", "apache", str(conf), "-o", str(out)],
                               capture_output=True, text=True, timeout=30)
    assert converted.returncode == 0, converted.stderr
    assert "ProxyPass /balancer-manager !" in converted.stderr  # reported, not dropped
    node = FulcrumProcess(["run", "-c", str(out)], tmp_path / "fulcrum.log")
    try:
        node.wait_listening(port)

        async def scenario() -> None:
            c = await Client.connect(port)
            names = Counter([(await c.get("/name")).body for _ in range(30)])
            assert names == {b"a": 10, b"b": 20}  # loadfactor 1:2, the hot standby idle
            r = await c.get("/name", "Cookie: JSESSIONID=xyz.node1\r\n")
            assert r.body == b"a"
            redirect = await c.get("/redirect", host="www.example.com")
            assert redirect.header(b"location").startswith(b"http://www.example.com/next")
            c.close()

        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        node.stop()
        for proc in backends.values():
            proc.stop()
