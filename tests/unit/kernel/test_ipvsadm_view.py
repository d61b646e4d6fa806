"""`fulcrum ipvsadm -L -n` prints ipvsadm's layouts column for column (ipvsadm.c's
printf formats: print_title, print_service_entry, print_largenum, list_conn)."""

from __future__ import annotations

from fulcrum.kernel.ipvsadm_view import (
    Counters,
    Flow,
    RealServer,
    VirtualService,
    count_connections,
    largenum,
    list_connections,
    list_rate,
    list_services,
    list_stats,
    parse_conntrack,
    rate,
)

# ipvsadm 1.31 on a director with one NAT service (LVS-NAT how-tos show this output);
# InActConn is padded to 10 columns, so the server lines end in spaces.
IPVSADM_LN = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    "TCP  192.168.50.253:80 rr\n"
    "  -> 192.168.50.251:80            Masq    1      0          0         \n"
    "  -> 192.168.50.252:80            Masq    1      0          0         \n"
)


def web(topology: str = "nat", **fields: object) -> VirtualService:
    servers = [RealServer("192.168.50.252", 80, 1, topology), RealServer("192.168.50.251", 80, 1, topology)]
    return VirtualService("TCP", "192.168.50.253", 80, "rr", servers=servers, **fields)  # type: ignore[arg-type]


def test_list_matches_ipvsadm_output() -> None:
    assert list_services([web()], 4096) == IPVSADM_LN


def test_list_forward_names_persistence_ipv6_and_order() -> None:
    dns = VirtualService("UDP", "192.0.2.53", 53, "sh", servers=[RealServer("10.0.0.1", 53, 2, "fullnat", 1, 4)])
    v6 = VirtualService("TCP", "2001:db8::80", 80, "mh", persistence=300,
                        servers=[RealServer("2001:db8::11", 80, 3, "dsr", 7, 2)])
    text = list_services([dns, v6, web("dsr")], 65536)
    lines = text.splitlines()
    assert lines[0] == "IP Virtual Server version 1.2.1 (size=65536)"
    # TCP before UDP; IPv4 before IPv6 (ipvs_cmp_services)
    assert lines[3] == "TCP  192.168.50.253:80 rr"
    assert lines[4].startswith("  -> 192.168.50.251:80            Route   1      0")
    assert lines[6] == "TCP  [2001:db8::80]:80 mh persistent 300"
    assert lines[7] == "  -> [2001:db8::11]:80" + " " * 12 + "Route   3      7          2         "
    assert lines[8] == "UDP  192.0.2.53:53 sh"
    assert lines[9] == "  -> 10.0.0.1:53" + " " * 18 + "FullNat 2      1          4         "


def test_largenum_units() -> None:
    assert largenum(0) == "        0"
    assert largenum(99_999_999) == " 99999999"
    assert largenum(100_000_000) == "  100000K"
    assert largenum(1_000_000_000) == "    1000M"
    assert largenum(100_000_000_000) == "     100G"
    assert largenum(100_000_000_000_000) == "     100T"


def test_stats_layout() -> None:
    service = web()
    service.counters = Counters(12, 340, 0, 25_000, 0)
    service.servers[1].counters = Counters(12, 340, 0, 25_000, 0)
    lines = list_stats([service], 4096).splitlines()
    assert lines[1] == "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
    assert lines[2] == "  -> RemoteAddress:Port"
    assert lines[3] == "TCP  192.168.50.253:80                  12      340        0    25000        0"
    assert lines[4] == "  -> 192.168.50.251:80                  12      340        0    25000        0"
    assert lines[5] == "  -> 192.168.50.252:80                   0        0        0        0        0"


def test_rate_layout_and_rates() -> None:
    service = web()
    service.counters = rate(Counters(10, 100, 0, 1000, 0), Counters(30, 300, 0, 5000, 0), 2.0)
    assert service.counters == Counters(10, 100, 0, 2000, 0)
    service.servers[0].counters = Counters(4, 40, 0, 800, 0)
    lines = list_rate([service], 4096).splitlines()
    assert lines[1] == "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"
    assert lines[3] == "TCP  192.168.50.253:80                  10      100        0     2000        0"
    assert lines[5] == "  -> 192.168.50.252:80" + " " * 12 + "       4       40        0      800        0"


CONNTRACK = """\
tcp      6 431999 ESTABLISHED src=198.18.0.10 dst=192.168.50.253 sport=40001 dport=80 src=192.168.50.251 dst=198.18.0.10 sport=80 dport=40001 [ASSURED] mark=0 use=1
tcp      6 117 TIME_WAIT src=198.18.0.10 dst=192.168.50.253 sport=40002 dport=80 src=192.168.50.252 dst=198.18.0.10 sport=80 dport=40002 [ASSURED] mark=0 use=1
tcp      6 86 ESTABLISHED src=198.18.0.10 dst=198.18.0.99 sport=40003 dport=22 src=198.18.0.99 dst=198.18.0.10 sport=22 dport=40003 [ASSURED] mark=0 use=1
udp      17 29 src=198.18.0.10 dst=192.0.2.53 sport=5353 dport=53 src=10.0.0.1 dst=198.18.0.10 sport=53 dport=5353 mark=0 use=1
icmp     1 29 src=198.18.0.10 dst=192.0.2.53 type=8 code=0 id=1 src=192.0.2.53 dst=198.18.0.10 type=0 code=0 id=1 mark=0 use=1
"""


def test_conntrack_counts_active_and_inactive_per_server() -> None:
    flows = parse_conntrack(CONNTRACK)
    assert len(flows) == 4  # icmp is not a service's
    assert flows[0] == Flow("TCP", 431999, "ESTABLISHED", ("198.18.0.10", 40001), ("192.168.50.253", 80),
                            ("192.168.50.251", 80))
    service = web()
    dns = VirtualService("UDP", "192.0.2.53", 53, "sh", servers=[RealServer("10.0.0.1", 53, 1, "nat")])
    ours = count_connections([service, dns], flows)
    assert len(ours) == 3  # the ssh flow to 198.18.0.99 is no service's
    by_address = {s.address: (s.active, s.inactive) for s in service.servers}
    assert by_address == {"192.168.50.251": (1, 0), "192.168.50.252": (0, 1)}
    assert (dns.servers[0].active, dns.servers[0].inactive) == (0, 1)


def test_connection_entries_layout() -> None:
    flows = parse_conntrack(CONNTRACK)
    text = list_connections(flows[1:2] + flows[3:])
    assert text == (
        "IPVS connection entries\n"
        "pro expire state       source             virtual            destination\n"
        "TCP 01:57  TIME_WAIT   198.18.0.10:40002  192.168.50.253:80  192.168.50.252:80\n"
        "UDP 00:29  UDP         198.18.0.10:5353   192.0.2.53:53      10.0.0.1:53\n")
    # a long conntrack timeout widens the column as ipvsadm's %-6s does
    assert list_connections(flows[:1]).splitlines()[2].startswith("TCP 7199:59 ESTABLISHED 198.18.0.10:40001")
