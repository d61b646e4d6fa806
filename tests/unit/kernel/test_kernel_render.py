"""The rendered nftables objects and the transactions between two plans (pure)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fulcrum.config.load import load_dict
from fulcrum.kernel.nftables import replace_script, update_script
from fulcrum.kernel.plane import configured_views
from fulcrum.kernel.render import Link, Plan, render

MACS = {"198.18.0.21": "02:00:00:00:00:21", "198.18.0.22": "02:00:00:00:00:22"}


def config(topology: str = "nat", scheduler: str = "wrr", **service: Any) -> Any:
    servers = ["198.18.0.21:80", "198.18.0.22:80"]
    if topology != "dsr":
        servers.append("[fd00:f0c::21]:80")
    return load_dict({
        "services": {"web": {"listen": ["198.18.0.100:80", "[fd00:f0c::100]:80"], "pool": "web",
                             "topology": topology, **service},
                     "plain": {"listen": ["127.0.0.1:8080"], "pool": "web2"}},
        "pools": {"web": {"scheduler": scheduler, "servers": servers},
                  "web2": {"servers": ["127.0.0.1:9000"]}}})


def plan_of(cfg: Any, views: Any = None) -> Plan:
    return render(cfg.kernel, cfg.services, views or configured_views(cfg),
                  {"web": Link("eth0", "02:00:00:00:00:01")}, MACS)


def rules(plan: Plan, family: str = "inet") -> str:
    return "\n".join(r for c in plan.tables[family].chains.values() for r in c.rules)


def test_nat_dispatches_each_vip_to_its_service_chain() -> None:
    plan = plan_of(config())
    inet = plan.tables["inet"]
    assert set(plan.tables) == {"inet"}  # the proxy service is not the kernel's
    assert inet.elements["dispatch4"] == {"198.18.0.100 . tcp . 80": "goto svc_web_v4"}
    assert inet.elements["dispatch6"] == {"fd00:f0c::100 . tcp . 80": "goto svc_web_v6"}
    assert "dnat ip to 198.18.0.21:80" in rules(plan)
    assert "dnat ip6 to [fd00:f0c::21]:80" in rules(plan)
    assert "masquerade" not in rules(plan)  # nat keeps the client's address
    assert set(inet.elements["svc_web_v6_b"].values()) == {"goto svc_web_v6_s2"}  # v6 VIP -> v6 servers


def test_packet_counters_are_one_map_lookup_per_packet_whatever_the_pool_size() -> None:
    inet = plan_of(config()).tables["inet"]
    assert inet.chains["st_web_v4"].rules == (
        "meta l4proto tcp ct direction . ct reply ip saddr . ct reply proto-src vmap @st_web_v4_m",)
    assert inet.elements["st_web_v4_m"] == {
        "original . 198.18.0.21 . 80": "goto st_web_v4_s0_in", "reply . 198.18.0.21 . 80": "goto st_web_v4_s0_out",
        "original . 198.18.0.22 . 80": "goto st_web_v4_s1_in", "reply . 198.18.0.22 . 80": "goto st_web_v4_s1_out"}
    assert inet.elements["st_web_v6_m"]["reply . fd00:f0c::21 . 80"] == "goto st_web_v6_s2_out"
    counting = inet.chains["st_web_v4_s1_out"].rules  # kernel_stats finds the counter by its comment
    assert counting == ('counter comment "fulcrum out web v4 198.18.0.22:80"',)


def test_fullnat_rewrites_the_source_with_the_snat_addresses() -> None:
    assert "masquerade" in rules(plan_of(config("fullnat")))
    one = rules(plan_of(config("fullnat", snat=["198.18.1.1"])))
    assert "snat ip to 198.18.1.1" in one and "ip6 daddr fd00:f0c::100 ct original proto-dst 80 masquerade" in one
    two = rules(plan_of(config("fullnat", snat=["198.18.1.1", "198.18.1.2"])))
    assert "snat ip to numgen inc mod 2 map { 0 : 198.18.1.1, 1 : 198.18.1.2 }" in two


def test_schedulers_pick_expressions() -> None:
    assert "numgen inc mod 2520 vmap @svc_web_v4_b" in rules(plan_of(config(scheduler="rr")))
    assert "numgen random mod 2520" in rules(plan_of(config(scheduler="random")))
    assert "jhash ip saddr mod 2520 seed 0x66756c63" in rules(plan_of(config(scheduler="sh")))
    mh = plan_of(config(scheduler="mh"))
    assert "jhash ip saddr mod 65521" in rules(mh) and len(mh.tables["inet"].elements["svc_web_v4_b"]) == 65521


def test_persistence_remembers_clients_per_server() -> None:
    plan = plan_of(config(persistence="5m"))
    inet = plan.tables["inet"]
    assert "timeout 300s" in inet.sets["svc_web_v4_s0_p"]
    assert "ip saddr @svc_web_v4_s0_p goto svc_web_v4_s0" in rules(plan)
    assert "update @svc_web_v4_s0_p { ip saddr }" in rules(plan)


def test_dsr_rewrites_the_mac_and_forwards_on_the_device() -> None:
    plan = plan_of(config("dsr"))
    assert set(plan.tables) == {"netdev"}
    netdev = plan.tables["netdev"]
    assert netdev.chains["ingress_eth0"].header.startswith('type filter hook ingress device "eth0"')
    text = rules(plan, "netdev")
    assert 'ether saddr set 02:00:00:00:00:01 fwd to "eth0"' in text
    assert "ether daddr set 02:00:00:00:00:21 goto dsr_web_v4_s0" in text
    assert netdev.elements["dsr_web_v6_m"] == {"02:00:00:00:00:21": "goto dsr_web_v6_s0",
                                               "02:00:00:00:00:22": "goto dsr_web_v6_s1"}
    # a server whose MAC is unknown takes no flows
    cfg = config("dsr")
    partial = render(cfg.kernel, cfg.services, configured_views(cfg), {"web": Link("eth0", "02:00:00:00:00:01")},
                     {"198.18.0.21": MACS["198.18.0.21"]})
    assert set(partial.tables["netdev"].elements["dsr_web_v4_b"].values()) == {"goto dsr_web_v4_s0_new"}


def test_a_server_state_change_is_an_element_update_only() -> None:
    cfg = config()
    views = configured_views(cfg)
    before = plan_of(cfg, views)
    pool = views["web"]
    down = {"web": replace(pool, servers=(replace(pool.servers[0], healthy=False), *pool.servers[1:]))}
    script = update_script(before, plan_of(cfg, down))
    verbs = {line.split()[0] + " " + line.split()[1] for line in script.splitlines()}
    assert verbs == {"delete element", "add element"}
    assert "goto svc_web_v4_s0" not in script.split("add element")[-1]
    assert update_script(before, plan_of(cfg, views)) == ""


def test_a_changed_service_replaces_its_chain_not_the_table() -> None:
    before, after = plan_of(config()), plan_of(config(scheduler="random"))
    script = update_script(before, after)
    assert "flush chain inet fulcrum svc_web_v4" in script
    assert "add rule inet fulcrum svc_web_v4 numgen random mod 2520 vmap @svc_web_v4_b" in script
    assert "delete table" not in script and "prerouting" not in script


def test_removing_the_last_kernel_service_deletes_the_table() -> None:
    before = plan_of(config())
    assert update_script(before, Plan({})) == "delete table inet fulcrum\n"
    added = update_script(Plan({}), before)
    assert added.startswith("add table inet fulcrum\n") and "add chain inet fulcrum prerouting" in added


def test_start_replaces_whatever_table_of_ours_was_left() -> None:
    script = replace_script(plan_of(config()), "fulcrum").splitlines()
    assert script[:4] == ["add table inet fulcrum", "delete table inet fulcrum",
                          "add table netdev fulcrum", "delete table netdev fulcrum"]
    assert all(" fulcrum" in line for line in script)  # never another table


def test_a_recreated_set_first_loses_the_rules_that_use_it() -> None:
    # a new persistence timeout re-declares each server's set; the kernel refuses to delete a
    # set a rule still refers to, so those chains are flushed first and refilled after
    script = update_script(plan_of(config(persistence="5m")), plan_of(config(persistence="10m"))).splitlines()
    flush = script.index("flush chain inet fulcrum svc_web_v4_s0")
    delete = script.index("delete set inet fulcrum svc_web_v4_s0_p")
    add = script.index("add set inet fulcrum svc_web_v4_s0_p { type ipv4_addr; flags dynamic,timeout; "
                       "timeout 600s; size 65536; }")
    refill = next(i for i, line in enumerate(script) if line.startswith("add rule inet fulcrum svc_web_v4_s0 "))
    assert flush < delete < add < refill
