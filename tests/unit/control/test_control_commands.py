"""The one command table, run against real PoolRuntime objects through a fake node."""

from __future__ import annotations

import asyncio
import tomllib
from typing import Any

import pytest
from control_helpers import AsyncFakeNode, FakeNode, make_config

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.control.commands import COMMANDS, CommandError, describe, edit_dict, edited, execute


def run(node: Any, name: str, **args: Any) -> Any:
    return asyncio.run(execute(node, name, args))


def backend(node: FakeNode, index: int, pool: str = "web") -> Any:
    return node.pools[pool].backends[index]


def test_every_command_has_help_and_described_arguments() -> None:
    assert len(COMMANDS) >= 20
    for command in COMMANDS.values():
        assert command.help.strip(), command.name
        assert all(arg.help for arg in command.args), command.name


def test_describe_lists_the_table_for_clients() -> None:
    table = {entry["name"]: entry for entry in describe()}
    assert set(table) == set(COMMANDS)
    weight = table["server.weight"]
    assert weight["changes_config"] and [a["name"] for a in weight["args"]] == ["server", "weight", "pool"]
    assert [a["required"] for a in weight["args"]] == [True, True, False]
    assert not table["server.blacklist"]["changes_config"]


def test_weight_by_index_changes_config_and_live_pool_through_reload() -> None:
    node = FakeNode(make_config())
    run(node, "server.weight", server="1", weight="7")
    assert node.config.pools["web"].servers[1].weight == 7
    assert backend(node, 1).weight == 7
    assert len(node.reloads) == 1


def test_server_by_host_port_and_ipv6() -> None:
    node = FakeNode(make_config())
    run(node, "server.max", server="[::1]:9003", limit=10)
    run(node, "server.hard", server="127.0.0.1:9002", limit=20)
    assert node.config.pools["web"].servers[2].max_connections == 10
    assert node.config.pools["web"].servers[1].hard_limit == 20


def test_live_state_survives_a_config_command() -> None:
    node = FakeNode(make_config())
    b = backend(node, 0)
    node.pools["web"].taken(b)
    run(node, "server.weight", server="0", weight=3)
    assert backend(node, 0) is b and b.active == 1


def test_disable_and_drain_keep_new_clients_away() -> None:
    node = FakeNode(make_config(["127.0.0.1:9001", "127.0.0.1:9002"], sticky={"mode": "none"}))
    run(node, "server.disable", server="0")
    picks = {node.pools["web"].pick(node.now(), client=f"10.0.0.{i}").key for i in range(6)}
    assert picks == {"127.0.0.1:9002"}
    run(node, "server.enable", server="0")
    run(node, "server.drain", server="1")
    picks = {node.pools["web"].pick(node.now(), client=f"10.0.0.{i}").key for i in range(6)}
    assert picks == {"127.0.0.1:9001"}
    assert node.config.pools["web"].servers[1].state == "drain"


def test_invalid_value_is_rejected_and_nothing_changes() -> None:
    node = FakeNode(make_config())
    with pytest.raises(ConfigError) as err:
        run(node, "server.weight", server="0", weight=70000)
    assert "pools.web.servers[0].weight" in str(err.value)
    assert node.reloads == [] and node.config.pools["web"].servers[0].weight == 1


@pytest.mark.parametrize(("server", "reason"), [
    ("3", "has 3 server(s)"), ("127.0.0.1:9999", "no server 127.0.0.1:9999"),
    ("nonsense", "expected an index"), ("other/0", "no pool named 'other'"),
])
def test_unknown_servers_are_named(server: str, reason: str) -> None:
    node = FakeNode(make_config())
    with pytest.raises(CommandError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        run(node, "server.weight", server=server, weight=2)


def test_bad_arguments() -> None:
    node = FakeNode(make_config())
    with pytest.raises(CommandError, match="unknown command"):
        run(node, "server.explode", server="0")
    with pytest.raises(CommandError, match="'weight' is required"):
        run(node, "server.weight", server="0")
    with pytest.raises(CommandError, match="unknown argument 'colour'"):
        run(node, "server.weight", server="0", weight=1, colour="red")
    with pytest.raises(CommandError, match="weight 'heavy'"):
        run(node, "server.weight", server="0", weight="heavy")
    with pytest.raises(CommandError, match="must not be negative"):
        run(node, "conn_max", limit=-1)


def test_blacklist_is_runtime_only() -> None:
    node = FakeNode(make_config(["127.0.0.1:9001", "127.0.0.1:9002"], sticky={"mode": "none"}))
    run(node, "server.blacklist", server="0", seconds="5")
    assert node.reloads == []
    pool = node.pools["web"]
    assert {pool.pick(node.now()).key for _ in range(4)} == {"127.0.0.1:9002"}
    node.clock += 5
    assert {pool.pick(node.now()).key for _ in range(4)} == {"127.0.0.1:9001", "127.0.0.1:9002"}


def test_pool_settings_reach_the_runtime() -> None:
    node = FakeNode(make_config(sticky={"mode": "source"}))
    run(node, "pool.clients_max", size=100)
    run(node, "pool.tracking", seconds="1m")
    run(node, "pool.blacklist", seconds=10)
    run(node, "pool.stubborn", on="on")
    run(node, "pool.scheduler", scheduler="hash")
    pool = node.pools["web"]
    assert pool.clients is not None and pool.clients.size == 100 and pool.clients.expiry == 60
    assert pool.config.blacklist == 10 and pool.config.stubborn and pool.config.scheduler == "hash"
    run(node, "pool.sticky", mode="none")
    assert node.pools["web"].clients is None
    with pytest.raises(CommandError, match="unknown scheduler"):
        run(node, "pool.scheduler", scheduler="fastest")


def test_node_wide_settings() -> None:
    node = FakeNode(make_config())
    run(node, "conn_max", limit=6144)
    run(node, "timeout.connect", seconds="500ms")
    run(node, "timeout.idle", seconds=0)
    run(node, "service.forwarded_for", on=True)
    run(node, "control.status_file", path="/tmp/x.html")
    assert node.config.max_connections == 6144
    assert node.config.timeouts.connect == 0.5 and node.config.timeouts.idle == 0
    assert node.config.services["web"].forwarded_for
    assert node.config.control.status_file == "/tmp/x.html"


def test_add_move_and_remove_servers() -> None:
    node = FakeNode(make_config())
    run(node, "server.add", address="127.0.0.1")  # port defaults to the listen port, as in pen
    assert node.config.pools["web"].servers[3].key == "127.0.0.1:8080"
    run(node, "server.move", server="3", port=9004)
    assert [b.key for b in node.pools["web"].backends][-1] == "127.0.0.1:9004"
    run(node, "server.remove", server="127.0.0.1:9001")
    assert [s.key for s in node.config.pools["web"].servers] == ["127.0.0.1:9002", "[::1]:9003", "127.0.0.1:9004"]
    with pytest.raises(ConfigError, match="listed twice"):
        run(node, "server.add", address="127.0.0.1", port=9002)


def test_several_pools_need_a_pool_for_an_index() -> None:
    config = load_dict({
        "services": {"a": {"listen": [":80"], "pool": "a"}, "b": {"listen": [":81"], "pool": "b"}},
        "pools": {"a": {"servers": ["127.0.0.1:9001"]}, "b": {"servers": ["127.0.0.1:9002"]}},
    })
    node = FakeNode(config)
    with pytest.raises(CommandError, match="name the pool"):
        run(node, "server.weight", server="0", weight=2)
    run(node, "server.weight", server="b/0", weight=2)
    run(node, "server.weight", server="127.0.0.1:9001", weight=3)
    assert node.config.pools["b"].servers[0].weight == 2
    assert node.config.pools["a"].servers[0].weight == 3
    with pytest.raises(CommandError, match="name the service"):
        run(node, "service.forwarded_for", on=True)


def test_async_reload_and_concurrent_edits_are_not_lost() -> None:
    node = AsyncFakeNode(make_config())

    async def both() -> None:
        await asyncio.gather(execute(node, "server.weight", {"server": "0", "weight": 5}),
                             execute(node, "server.weight", {"server": "1", "weight": 6}),
                             execute(node, "conn_max", {"limit": 77}))

    asyncio.run(both())
    assert [s.weight for s in node.config.pools["web"].servers] == [5, 6, 1]
    assert node.config.max_connections == 77


def test_status_and_servers_commands() -> None:
    node = FakeNode(make_config())
    node.connections = 4
    info = run(node, "status")
    assert info["connections"] == 4 and info["pools"]["web"]["servers"][2]["address"] == "::1"
    servers = run(node, "servers")
    assert [(s["pool"], s["index"], s["port"]) for s in servers] == [("web", 0, 9001), ("web", 1, 9002), ("web", 2, 9003)]


def test_edit_dict_offline_and_runtime_commands_refused_there() -> None:
    data = make_config().model_dump()
    edit_dict(data, "server.weight", {"server": "0", "weight": 4})
    assert load_dict(data).pools["web"].servers[0].weight == 4
    with pytest.raises(CommandError, match="running balancer"):
        edit_dict(data, "server.blacklist", {"server": "0", "seconds": 3})
    assert edited(make_config(), "conn_max", {"limit": 9}).max_connections == 9


def test_write_files(tmp_path: Any) -> None:
    node = FakeNode(make_config())
    with pytest.raises(CommandError, match="control.status_file is not set"):
        run(node, "status.write")
    run(node, "status.write", path=str(tmp_path / "status.html"))
    assert "<h1>Pen status page</h1>" in (tmp_path / "status.html").read_text()
    run(node, "config.write", path=str(tmp_path / "c.toml"))
    assert load_dict(tomllib.loads((tmp_path / "c.toml").read_text())) == node.config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "status.html"]  # no temp files left


def test_reload_command() -> None:
    node = FakeNode(make_config())
    data = node.config.model_dump()
    data["max_connections"] = 12
    assert run(node, "reload", config=data) == "reloaded"
    assert node.config.max_connections == 12
    with pytest.raises(CommandError, match="no file to re-read"):
        run(node, "reload")
    data["pools"]["web"]["servers"] = []
    with pytest.raises(ConfigError):
        run(node, "reload", config=data)
    assert node.config.max_connections == 12
