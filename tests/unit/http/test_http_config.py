"""The one model's rules for http services, with the key paths the errors name."""

from __future__ import annotations

from typing import Any

import pytest

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict


def data(mode: str = "http", http: dict[str, Any] | None = None, sticky: str = "none") -> dict[str, Any]:
    service: dict[str, Any] = {"listen": ["127.0.0.1:8080"], "pool": "p", "mode": mode}
    if http is not None:
        service["http"] = http
    return {"services": {"web": service},
            "pools": {"p": {"servers": ["127.0.0.1:9000"], "sticky": {"mode": sticky}}}}


@pytest.mark.parametrize(("config", "path"), [
    (data(http={"routes": [{"path": "/a", "pool": "missing"}]}), "services.web.http.routes[0].pool"),
    (data(http={"routes": [{"path": "a", "pool": "p"}]}), "services.web.http.routes[0].path"),
    (data(http={"accept_proxy_protocol": ["10.0.0.0/33"]}), "services.web.http.accept_proxy_protocol"),
    (data(mode="tcp", http={"preserve_host": False}), "services.web.http"),
    (data(mode="tcp", sticky="insert"), "pools.p.sticky.mode"),
    (data(mode="tcp", sticky="cookie"), "pools.p.sticky.mode"),
])
def test_rejected_with_the_key_path(config: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_dict(config)
    assert path in [p for p, _ in err.value.problems], err.value.problems


def test_http_services_take_cookie_and_insert_stickiness() -> None:
    for sticky in ("cookie", "insert", "source"):
        config = load_dict(data(sticky=sticky))
        assert config.pools["p"].sticky.mode == sticky
    assert load_dict(data(mode="tcp")).services["web"].http.preserve_host  # defaults are fine
