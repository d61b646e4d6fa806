"""Tests of the benchmark's own parsing and arithmetic (run: `.venv/bin/pytest bench`).

They check how figures are read and compared, not how fast anything is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import apache
import cpu_profile
import peers
import procs
import pytest
import report
import syscalls
import wrk

from fulcrum.config.load import load_file

WRK_REPORT = """\
Running 2s test @ http://127.0.0.1:47929/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.07ms    1.29ms   8.61ms   68.00%
    Req/Sec     8.34k     1.82k   14.37k    72.50%
  Latency Distribution
     50%    1.79ms
     75%    2.88ms
     90%    3.91ms
     99%  812.00us
  33530 requests in 2.02s, 4.64MB read
  Socket errors: connect 1, read 20, write 3, timeout 4
  Non-2xx or 3xx responses: 7
Requests/sec:  16569.98
Transfer/sec:      2.29MB
"""


def test_wrk_report_is_read_with_units_and_errors() -> None:
    result = wrk.parse(WRK_REPORT)
    assert result.requests == 33530
    assert result.seconds == pytest.approx(2.02)
    assert result.requests_per_second == pytest.approx(16569.98)
    assert result.p99_ms == pytest.approx(0.812)
    assert result.socket_errors == 28
    assert result.bad_status == 7
    assert result.errors == 35


def test_wrk_report_without_error_lines_has_no_errors() -> None:
    clean = "\n".join(line for line in WRK_REPORT.splitlines()
                      if "errors" not in line and "Non-2xx" not in line)
    assert wrk.parse(clean).errors == 0


def test_wrk_report_without_latency_distribution_is_refused() -> None:
    without_p99 = "\n".join(line for line in WRK_REPORT.splitlines() if "99%" not in line)
    with pytest.raises(wrk.WrkError):
        wrk.parse(without_p99)


def test_wrk_sends_connection_close_only_for_close_traffic() -> None:
    assert "Connection: close" in wrk.command(8080, 2, 50, 10, close=True)
    assert "Connection: close" not in wrk.command(8080, 2, 50, 10, close=False)


def test_stat_line_with_parentheses_in_the_name() -> None:
    fields = ["S", "77"] + ["0"] * 9 + ["120", "30"] + ["0"] * 30
    line = "4242 (a) (b c) " + " ".join(fields)
    assert procs.parse_stat(line) == (77, 120, 30)


def test_process_tree_includes_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        ticks = procs.tree_ticks(os.getpid())
        assert os.getpid() in ticks
        assert child.pid in ticks
    finally:
        child.kill()
        child.wait(timeout=10)


def test_cpu_between_snapshots_counts_new_processes_whole() -> None:
    hz = procs.CLOCK_TICKS_PER_SECOND
    before = {1: (100, 10), 2: (50, 50)}
    after = {1: (100 + hz, 10 + 2 * hz), 3: (hz, 3 * hz)}
    user, system = procs.cpu_seconds_between(before, after)
    assert (user, system) == (pytest.approx(2.0), pytest.approx(5.0))


def _row(balancer: str, family: str, parallelism: int, cpu_us: float, rps: float,
         failure: str | None = None, mode: str = "tcp") -> report.Measurement:
    return report.Measurement(mode, "keep-alive", balancer, family, parallelism, requests=1_000_000,
                              requests_per_second=rps, cpu_seconds=cpu_us, cpu_sys_seconds=cpu_us / 2,
                              failure=failure)


def test_fulcrum_is_compared_with_haproxy_of_the_same_parallelism_and_with_pen() -> None:
    rows = [_row("fulcrum 2", "fulcrum", 2, 30.0, 20_000), _row("haproxy 1", "haproxy", 1, 10.0, 1),
            _row("haproxy 2", "haproxy", 2, 15.0, 40_000), _row("pen", "pen", 1, 12.0, 10_000)]
    found = report.ratios(rows, rows[0])
    assert found["cpu_vs_haproxy"] == pytest.approx(2.0)
    assert found["rps_vs_haproxy"] == pytest.approx(0.5)
    assert found["cpu_vs_pen"] == pytest.approx(2.5)
    assert found["rps_vs_pen"] == pytest.approx(2.0)
    assert report.ratios(rows, rows[1]) == {}


def test_failed_peers_give_no_ratio() -> None:
    rows = [_row("fulcrum 1", "fulcrum", 1, 30.0, 20_000),
            _row("pen", "pen", 1, 0.0, 0.0, failure="did not start")]
    found = report.ratios(rows, rows[0])
    assert found["cpu_vs_pen"] is None and found["cpu_vs_haproxy"] is None
    assert "| pen | failed |" in report.markdown_table(rows)


def test_fulcrum_bench_config_is_valid(tmp_path: Path) -> None:
    argv = peers.fulcrum_variant("fulcrum", 2).command(tmp_path, 4000, [4001, 4002])
    config = load_file(argv[-1])
    assert config.workers == 2
    assert [s.port for s in config.pools["bench"].servers] == [4001, 4002]
    assert config.services["bench"].listen[0].port == 4000


def test_shared_state_rows_use_lc_and_the_client_table_with_workers_2(tmp_path: Path) -> None:
    variant = peers.fulcrum_variant("fulcrum", 2, "tcp", "lc", clients=True)
    assert variant.label == "fulcrum lc+clients workers=2"
    config = load_file(variant.command(tmp_path, 4000, [4001, 4002])[-1])
    assert (config.workers, config.pools["bench"].scheduler, config.pools["bench"].sticky.mode) == (2, "lc", "source")


def test_http_rows_are_compared_with_haproxy_and_apache_and_tables_split_by_mode() -> None:
    rows = [_row("fulcrum 1", "fulcrum", 1, 40.0, 10_000, mode="http"),
            _row("haproxy 1", "haproxy", 1, 20.0, 20_000, mode="http"),
            _row("apache", "apache", 2, 80.0, 5_000, mode="http"),
            _row("fulcrum 1", "fulcrum", 1, 15.0, 30_000),
            _row("pen", "pen", 1, 10.0, 30_000)]
    tables = report.by_table(rows)
    assert list(tables) == ["http keep-alive", "tcp keep-alive"]
    found = report.ratios(tables["http keep-alive"], rows[0])
    assert set(found) == {"cpu_vs_haproxy", "rps_vs_haproxy", "cpu_vs_apache", "rps_vs_apache"}
    assert found["cpu_vs_haproxy"] == pytest.approx(2.0)
    assert found["cpu_vs_apache"] == pytest.approx(0.5)
    assert found["rps_vs_apache"] == pytest.approx(2.0)
    http_table = report.markdown_table(tables["http keep-alive"])
    assert "CPU ×apache" in http_table and "×pen" not in http_table
    assert report.ratios(tables["tcp keep-alive"], rows[3])["cpu_vs_pen"] == pytest.approx(1.5)


def test_http_target_is_judged_against_haproxy_and_apache() -> None:
    rows = [_row("fulcrum 1", "fulcrum", 1, 40.0, 1, mode="http"),
            _row("haproxy 1", "haproxy", 1, 20.0, 1, mode="http"),
            _row("apache", "apache", 2, 50.0, 1, mode="http"),
            _row("fulcrum 1", "fulcrum", 1, 99.0, 1)]
    [line] = report.http_targets(rows)
    assert "CPU ×haproxy 2.00 (target ≤ 1.5: NOT met)" in line
    assert "CPU ×apache 0.80 (target < 1: met)" in line


def test_same_label_in_two_modes_gives_two_medians() -> None:
    every = [_row("fulcrum 1", "fulcrum", 1, 10.0, 1), _row("fulcrum 1", "fulcrum", 1, 50.0, 2, mode="http")]
    assert [(r.mode, r.requests_per_second) for r in report.medians(every)] == [("tcp", 1), ("http", 2)]


def test_non_2xx_answers_are_shown_apart_from_socket_errors() -> None:
    row = _row("apache", "apache", 2, 80.0, 5_000, mode="http")
    row.errors, row.non_2xx = 3, 17
    line = report.markdown_table([row]).splitlines()[-1]
    assert "| 3 | 17 |" in line


def test_fulcrum_http_bench_config_is_valid(tmp_path: Path) -> None:
    argv = peers.fulcrum_variant("fulcrum", 1, "http").command(tmp_path, 4000, [4001, 4002])
    config = load_file(argv[-1])
    service = config.services["bench"]
    assert service.mode == "http" and service.pool == "bench"
    assert config.pools["bench"].scheduler == "rr"
    assert config.pools["bench"].health.kind == "none"


def test_haproxy_http_mode_keeps_alive_and_adds_x_forwarded_for(tmp_path: Path) -> None:
    text = Path(peers.haproxy_variant(1, "http").command(tmp_path, 4000, [4001])[2]).read_text()
    assert "mode http" in text and "mode tcp" not in text
    assert "option http-keep-alive" in text and "option forwardfor" in text
    assert "balance roundrobin" in text and "server s0 127.0.0.1:4001" in text


def test_apache_config_lives_in_the_run_directory(tmp_path: Path) -> None:
    variant = apache.apache_variant()
    argv = variant.command(tmp_path, 4000, [4001, 4002])
    assert argv[:2] == ["apache2", "-f"] and argv[-1] == "-DFOREGROUND"
    text = Path(argv[2]).read_text()
    assert f"ServerRoot {tmp_path / 'apache'}" in text
    assert "Listen 127.0.0.1:4000" in text
    assert "BalancerMember http://127.0.0.1:4001" in text and "BalancerMember http://127.0.0.1:4002" in text
    assert "ProxyPass / balancer://bench/" in text
    for module in ("proxy", "proxy_http", "proxy_balancer", "lbmethod_byrequests", "slotmem_shm", "mpm_event"):
        assert f"LoadModule {module}_module " in text
    assert "/etc/apache2" not in text
    env = variant.environment(tmp_path) if variant.environment else {}
    assert env["APACHE_RUN_DIR"].startswith(str(tmp_path))
    assert env["APACHE_PID_FILE"].startswith(str(tmp_path))


def test_haproxy_thread_count_is_set_only_when_asked(tmp_path: Path) -> None:
    one = peers.haproxy_variant(1).command(tmp_path, 4000, [4001])
    default = peers.haproxy_variant(None).command(tmp_path, 4000, [4001])
    assert "nbthread 1" in Path(one[2]).read_text()
    assert "nbthread" not in Path(default[2]).read_text()


def test_collapsed_stacks_count_self_and_inclusive_once_per_sample() -> None:
    raw = ("main (a.py:1);relay (b.py:5);send (b.py:9) 3\n"
           "main (a.py:1);relay (b.py:5) 2\n"
           "main (a.py:1);f (c.py:1);f (c.py:1) 5\n")
    self_counts, inclusive, total = cpu_profile.parse_collapsed(raw)
    assert total == 10
    assert self_counts["send (b.py:9)"] == 3 and self_counts["relay (b.py:5)"] == 2
    assert inclusive["relay (b.py:5)"] == 5
    assert inclusive["f (c.py:1)"] == 5  # recursion is not counted twice
    assert inclusive["main (a.py:1)"] == 10


def test_median_round_is_picked_whole_and_failures_are_skipped() -> None:
    every = [_row("pen", "pen", 1, 30.0, 1), _row("pen", "pen", 1, 10.0, 2),
             _row("pen", "pen", 1, 0.0, 0, failure="wrk timed out"), _row("pen", "pen", 1, 20.0, 3),
             _row("haproxy", "haproxy", 1, 0.0, 0, failure="did not start")]
    picked = report.medians(every)
    assert [r.requests_per_second for r in picked] == [3, 0]
    assert picked[1].failure == "did not start"


def test_native_leaves_are_sorted_into_syscalls_python_and_c() -> None:
    assert cpu_profile.leaf_kind("write (libc.so.6)") == "syscall write"
    assert cpu_profile.leaf_kind("ClientSide._open (fulcrum/proxy/tcp.py:116)") == "Python code"
    assert cpu_profile.leaf_kind("uv__read (stream.c:1154)").startswith("C code")
    assert cpu_profile.leaf_kind("malloc (libc.so.6)").startswith("C code")


PERF_REPORT = """\

    46.90%  libpython3.11.so.1.0
    37.95%  [kernel.kallsyms]
     6.20%  parser.cpython-311-x86_64-linux-gnu.so
# Total Lost Samples: 0
"""


def test_perf_report_rows_are_read_with_their_percentages() -> None:
    rows = cpu_profile.parse_perf_report(PERF_REPORT)
    assert rows == [(46.90, "libpython3.11.so.1.0"), (37.95, "[kernel.kallsyms]"),
                    (6.20, "parser.cpython-311-x86_64-linux-gnu.so")]


STRACE_SUMMARY = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 40.00    0.004000           2      2000           read
 30.00    0.003000           3      1000       500 connect
 30.00    0.003000           1      3000           epoll_pwait
------ ----------- ----------- --------- --------- ----------------
100.00    0.010000           1      6000       500 total
"""


def test_strace_summary_gives_calls_per_syscall_without_the_total() -> None:
    calls = syscalls.parse_strace_summary(STRACE_SUMMARY)
    assert calls == {"read": 2000, "connect": 1000, "epoll_pwait": 3000}


def _kernel() -> Any:
    import kernel  # imports the namespace lab's module; nothing is built by importing it
    return kernel


def test_kernel_rounds_give_medians_of_figures_and_of_per_round_ratios() -> None:
    kernel = _kernel()

    def row(variant: str, rps: float, cpu: float) -> Any:
        return kernel.Row(variant, "close", requests=int(rps * 5), requests_per_second=rps, cpu_us_per_request=cpu,
                          machine_us_per_request=cpu)
    rounds = [[row("direct", 1000, 100), row("nat", 900, 120), row("haproxy", 500, 180)],
              [row("direct", 2000, 110), row("nat", 1000, 140), row("haproxy", 1000, 210)],
              [row("direct", 1000, 100), row("nat", 950, 110), row("haproxy", 600, 140)]]
    rounds[2][1].failure = "wrk timed out"  # left out; the other rounds count
    nat = {s.variant: s for s in kernel.summarize(rounds)}["nat"]
    assert nat.rounds == 2 and nat.failure == ""
    assert nat.added_each_round == (20.0, 30.0) and nat.added_us_per_request == 25.0
    assert nat.versus_haproxy == (20 / 80 + 30 / 100) / 2  # each round against its own HAProxy
    assert nat.versus_direct == (0.9 + 0.5) / 2
    assert nat.capacity_versus_direct == (100 / 120 + 110 / 140) / 2
    assert "| nat | close | 950 | 70% | 81% |" in kernel.table(kernel.summarize(rounds))


def test_kernel_profile_groups_kernel_symbols_by_part_of_the_path() -> None:
    groups = _kernel().parse_perf_report("""\
    10.00%  100  [k] nf_conntrack_in
     5.00%   50  [k] nft_do_chain
     3.00%   30  [k] nf_nat_inet_fn
     2.00%   20  [k] br_handle_frame
     1.00%   10  [.] ngx_http_process_request
     1.00%   10  [k] tcp_v4_rcv
""")
    assert groups == {"conntrack": 100, "nftables rules": 50, "nat": 30, "bridge": 20, "user space": 10,
                      "other kernel (tcp, sockets, syscalls, scheduler)": 10}
