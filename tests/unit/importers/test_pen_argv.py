"""pen command lines, parsed as pen 0.34 parses them."""

from __future__ import annotations

import socket

import pytest

from fulcrum.config.errors import ConfigError
from fulcrum.importers.pen import OBSOLETE_OPTIONS, REFUSED_OPTIONS, parse_pen_argv


def pen(line: str):  # type: ignore[no-untyped-def]
    return parse_pen_argv(line.split())


def servers(invocation) -> list[tuple[str, int, int, int, int, int]]:  # type: ignore[no-untyped-def]
    return [(s.address, s.port, s.max_connections, s.hard_limit, s.weight, s.priority)
            for s in invocation.config.pools["pen"].servers]


def test_the_talks_command_line() -> None:
    inv = pen("-x 6144 -c 262144 -h -H -p /tmp/pen.pid 0.0.0.0:8080 127.0.0.1:9001 127.0.0.1:9002")
    config = inv.config
    service, pool = config.services["pen"], config.pools["pen"]
    assert [str(e) for e in service.listen] == ["0.0.0.0:8080"]
    assert service.pool == "pen" and service.forwarded_for
    assert config.max_connections == 6144
    assert pool.scheduler == "hash"
    assert (pool.sticky.mode, pool.sticky.table_size, pool.sticky.expiry) == ("source", 262144, 0)
    assert config.control.pidfile == "/tmp/pen.pid"
    assert [s.key for s in pool.servers] == ["127.0.0.1:9001", "127.0.0.1:9002"]
    assert not inv.foreground  # pen daemonizes unless -f


def test_pen_defaults() -> None:
    config = pen("8080 a.example:80").config
    pool = config.pools["pen"]
    assert [str(e) for e in config.services["pen"].listen] == ["0.0.0.0:8080"]  # pen: IPv4 any
    assert pool.scheduler == "rr" and pool.sticky.mode == "source" and pool.sticky.table_size == 2048
    assert pool.blacklist == 30 and not pool.stubborn and pool.emergency is None
    assert pool.health.kind == "none" and pool.health.passive
    assert config.max_connections == 500 and config.timeouts.connect == 3 and config.timeouts.idle == 0
    assert config.services["pen"].backlog == 500 and config.control.pen_port is None


def test_clustered_flags_and_attached_arguments() -> None:
    inv = pen("-fddrsX -x6144 -c100 -b 5 -T60 -t 7 8080 h1 h2:81")
    pool = inv.config.pools["pen"]
    assert inv.foreground and inv.debug == 2 and inv.exit_enabled
    assert inv.config.log.level == "debug"
    assert pool.sticky.mode == "none" and pool.stubborn
    assert inv.config.max_connections == 6144 and pool.sticky.table_size == 100
    assert pool.blacklist == 5 and pool.sticky.expiry == 60 and inv.config.timeouts.connect == 7
    assert [s.key for s in pool.servers] == ["h1:8080", "h2:81"]


def test_options_after_the_positional_arguments_as_glibc_getopt() -> None:
    inv = pen("8080 h1:80 -f h2:80 -h")
    assert inv.foreground and inv.config.pools["pen"].scheduler == "hash"
    assert [s.key for s in inv.config.pools["pen"].servers] == ["h1:80", "h2:80"]


def test_double_dash_ends_options() -> None:
    inv = pen("-f -- 8080 h1")
    assert inv.foreground and len(inv.config.pools["pen"].servers) == 1


@pytest.mark.parametrize(("listen", "expected"), [
    ("8080", ["0.0.0.0:8080"]),
    ("127.0.0.1:8080", ["127.0.0.1:8080"]),
    (":::8080", ["[::]:8080"]),  # pen splits at the last ':'
    ("[::1]:8080", ["[::1]:8080"]),
    ("0.0.0.0:8080,[::]:8080", ["0.0.0.0:8080", "[::]:8080"]),  # fulcrum: several
])
def test_listen_addresses(listen: str, expected: list[str]) -> None:
    assert [str(e) for e in pen(f"{listen} 127.0.0.1:9001").config.services["pen"].listen] == expected


def test_server_syntax_limits_weights_prio_and_ipv6() -> None:
    inv = pen("-W 8080 127.0.0.1:9001:10:20:3:1 [2001:db8::1]:9002:0:0:2 [::1] backend")
    assert servers(inv) == [
        ("127.0.0.1", 9001, 10, 20, 3, 1),
        ("2001:db8::1", 9002, 0, 0, 2, 0),
        ("::1", 8080, 0, 0, 1, 0),  # port defaults to the listen port, as in pen
        ("backend", 8080, 0, 0, 1, 0),
    ]
    assert inv.config.pools["pen"].scheduler == "weight"


def test_weight_zero_outside_weight_mode_is_read_as_pen_reads_it() -> None:
    inv = pen("8080 h1:80:0:0:0:2 h2:80")
    assert [s.weight for s in inv.config.pools["pen"].servers] == [1, 1]
    assert any("weight 0 read as 1" in n for n in inv.notices)
    assert [s.weight for s in pen("-W 8080 h1:80:0:0:0:2 h2:80:0:0:1").config.pools["pen"].servers] == [0, 1]


def test_port_names_from_services_file() -> None:
    try:
        smtp = socket.getservbyname("smtp", "tcp")
    except OSError:
        pytest.skip("no smtp entry in /etc/services")
    inv = pen("smtp mailhost1:smtp mailhost2:25 mailhost3")  # pen's own example
    assert [s.port for s in inv.config.pools["pen"].servers] == [smtp, 25, smtp]


@pytest.mark.parametrize(("flags", "scheduler", "sticky"), [
    ("", "rr", "source"), ("-r", "rr", "none"), ("-h", "hash", "source"), ("-rh", "hash", "none"),
    ("-W", "weight", "source"), ("-h -W", "weight", "source"),  # pen: weight beats hash
    ("-o prio", "prio", "source"), ("-W -o prio", "prio", "source"),  # prio beats weight
])
def test_scheduler_flags(flags: str, scheduler: str, sticky: str) -> None:
    argv = flags.split() if "-o" not in flags else flags.split()[:-2] + ["-o", "prio"]
    pool = parse_pen_argv([*argv, "8080", "h1", "h2"]).config.pools["pen"]
    assert (pool.scheduler, pool.sticky.mode) == (scheduler, sticky)


def test_process_and_control_options() -> None:
    inv = pen("-C 8888 -w /tmp/status.html -u nobody -l /tmp/pen.log -p /tmp/p.pid -e 10.0.0.9 -q 100 8080 h1")
    config = inv.config
    assert str(config.control.pen_port) == "127.0.0.1:8888"  # localhost unless an address is given
    assert config.control.status_file == "/tmp/status.html" and config.control.pidfile == "/tmp/p.pid"
    assert inv.user == "nobody" and inv.logfile == "/tmp/pen.log" and config.log.access == "/tmp/pen.log"  # pen's per-connection log is the access log
    assert config.pools["pen"].emergency is not None and config.pools["pen"].emergency.key == "10.0.0.9:8080"
    assert config.services["pen"].backlog == 100
    assert str(pen("-C 0.0.0.0:8888 8080 h1").config.control.pen_port) == "0.0.0.0:8888"
    assert str(pen("-C [::1]:8888 8080 h1").config.control.pen_port) == "[::1]:8888"


def test_backlog_is_bumped_to_fifty_as_pen_does() -> None:
    inv = pen("-q 10 8080 h1")
    assert inv.config.services["pen"].backlog == 50 and any("bumped to 50" in n for n in inv.notices)


def test_no_server_limit_and_obsolete_S() -> None:
    hosts = " ".join(f"10.0.0.{i}:80" for i in range(1, 41))
    inv = pen(f"-S 16 8080 {hosts}")
    assert len(inv.config.pools["pen"].servers) == 40
    assert any(n.startswith("-S:") for n in inv.notices)


@pytest.mark.parametrize("option", sorted(OBSOLETE_OPTIONS))
def test_obsolete_options_are_accepted_with_a_notice(option: str) -> None:
    argv = [option, "4"] if option == "-S" else [option]
    inv = parse_pen_argv([*argv, "8080", "h1"])
    assert [n for n in inv.notices if n.startswith(option)]


@pytest.mark.parametrize("option", sorted(REFUSED_OPTIONS))
def test_unsupported_options_are_refused_by_name(option: str) -> None:
    takes_argument = option.lstrip("-") + ":" in "B:C:F:O:S:T:b:c:e:i:j:l:m:o:p:q:t:u:w:x:E:K:G:A:L:"
    argv = [option, "x"] if takes_argument else [option]
    with pytest.raises(ConfigError) as err:
        parse_pen_argv([*argv, "8080", "h1"])
    assert err.value.exit_status == 2
    path, reason = err.value.problems[0]
    assert path == f"pen {option}" and len(reason) > 20


@pytest.mark.parametrize(("line", "path", "reason"), [
    ("-Y 8080 h1", "pen -Y", "not a pen option"),
    ("8080 h1 -x", "pen -x", "needs an argument"),
    ("-x many 8080 h1", "pen -x", "not a whole number"),
    ("-t 0 8080 h1", "pen -t", "at least 1 second"),
    ("-l loghost:10000 8080 h1", "pen -l", "penlogd"),
    ("-C /run/pen.ctl 8080 h1", "pen -C", "Unix-domain"),
    ("/run/pen.sock h1", "pen listen", "Unix-domain"),
    ("8080", "pen", "no servers"),
    ("-f", "pen", "no listen address"),
    ("8080 h1:99999", "pools.pen.servers[0].port", "1..65535"),
    ("8080 h1:http2x", "pen server 'h1:http2x'", "neither a port number nor a service name"),
    ("8080 h1:80:x", "pen server 'h1:80:x'", "not a number"),
    ("-o bogus 8080 h1", "pen -o", "ignoring command starting with 'bogus'"),
    ("-o acl 1 permit 10.0.0.1 8080 h1", "pen -o", "access lists"),
])
def test_errors_name_the_option(line: str, path: str, reason: str) -> None:
    argv = line.split()
    if argv[:2] == ["-o", "acl"]:
        argv = ["-o", "acl 1 permit 10.0.0.1", "8080", "h1"]
    with pytest.raises(ConfigError) as err:
        parse_pen_argv(argv)
    got_path, got_reason = err.value.problems[0]
    assert got_path == path and reason in got_reason


def test_o_options_apply_penctl_commands_after_the_servers() -> None:
    inv = parse_pen_argv(["-o", "server 1 weight 5", "-o", "tracking 30", "-W", "8080", "h1", "h2"])
    pool = inv.config.pools["pen"]
    assert [s.weight for s in pool.servers] == [1, 5] and pool.sticky.expiry == 30
