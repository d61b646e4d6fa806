"""What the one model accepts for kernel topologies, and what `fulcrum check` says."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from fulcrum.cli.main import main
from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict


def data(topology: str = "nat", scheduler: str = "wrr", listen: list[str] | None = None,
         servers: list[str] | None = None, **service: Any) -> dict[str, Any]:
    return {"services": {"web": {"listen": listen or ["198.18.0.100:80"], "pool": "web", "topology": topology,
                                 **service}},
            "pools": {"web": {"scheduler": scheduler, "servers": servers or ["198.18.0.21:80"]}}}


def problem(d: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        load_dict(d)
    return str(err.value)


def test_the_three_topologies_are_accepted() -> None:
    for topology in ("nat", "fullnat", "dsr"):
        assert load_dict(data(topology)).services["web"].topology == topology


def test_count_based_schedulers_are_refused_with_the_ones_that_work() -> None:
    text = problem(data(scheduler="wlc"))
    assert "pools.web.scheduler" in text and "rr, wrr, sh, mh, random" in text


def test_udp_needs_a_kernel_topology() -> None:
    assert load_dict(data(protocol="udp")).services["web"].protocol == "udp"
    assert "services.web.protocol" in problem(data("proxy", protocol="udp"))


@pytest.mark.parametrize(("changes", "field"), [
    ({"listen": ["0.0.0.0:80"]}, "services.web.listen[0]"),
    ({"listen": [":80"]}, "services.web.listen[0]"),
    ({"snat": ["198.18.1.1"]}, "services.web.snat"),  # nat keeps the source
    ({"listen": ["[fd00::100]:80"]}, "pools.web.servers"),  # no IPv6 server to translate to
    ({"mode": "http"}, "services.web.mode"),
])
def test_refusals_name_the_field(changes: dict[str, Any], field: str) -> None:
    assert field in problem(data(**changes))


def test_dsr_cannot_change_the_port() -> None:
    assert "dsr cannot change the port" in problem(data("dsr", servers=["198.18.0.21:8080"]))


def test_persistence_only_for_kernel_topologies() -> None:
    assert load_dict(data(persistence="5m")).services["web"].persistence == 300
    assert "services.web.persistence" in problem(data("proxy", persistence="5m"))


def test_check_says_nat_servers_route_replies_through_the_balancer(tmp_path: Any) -> None:
    path = tmp_path / "nat.toml"
    path.write_text('[services.web]\nlisten = ["198.18.0.100:80"]\npool = "web"\ntopology = "nat"\n'
                    '[pools.web]\nservers = ["198.18.0.21:80"]\n')
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 0
    assert "replies back through this balancer" in result.stderr


def test_loopback_servers_are_the_proxys_job() -> None:
    text = problem(data(servers=["127.0.0.1:8080"]))
    assert "services.web.topology" in text and "loopback" in text
