"""Benchmark of the kernel topologies (nat, fullnat, dsr) beside the userspace balancers
(fulcrum's proxy topology, HAProxy, pen), in network namespaces: a client (wrk), a
balancer and two nginx servers on one bridge, addresses from 198.18.0.0/15 only.

A kernel topology's cost cannot be read from the balancer's process: the work is done in
softirq context. Two figures per request, each minus the same for the client talking
straight to the servers ("direct": what the balancer adds):
- the CPU of every process of the benchmark - wrk (from its rusage), the nginx servers and
  the balancer (user + system from /proc/<pid>/stat of every process in their namespaces) -
  which, with tick-based accounting (CONFIG_IRQ_TIME_ACCOUNTING off, as on this kernel),
  includes the softirq work the kernel does in their context: the veth, bridge, conntrack
  and nftables work of each packet runs in the sending task's softirq. Softirq deferred to
  ksoftirqd is shown beside (machine-wide, so an upper bound).
- the whole machine's user+nice+system+irq+softirq from /proc/stat, as issue 8 asked: on
  this shared machine it includes other people's work, so each run also reports that
  other work in CPUs; near 0 the two figures agree, above ~0.3 the machine's is not usable.

Method (rewritten 2026-12-01 after two faults were found, see bench/README.md):
- Every measurement starts from the same state: TIME_WAIT sockets of the namespaces are
  dropped (`ss -K`) and lb0's conntrack table is flushed first. Before, the servers'
  TIME_WAIT left by one variant met the next one's connections from the same client
  ports with other TCP timestamps (another destination address, another timestamp
  offset): PAWS refused those SYNs, each cost a 1 s retransmission, and `nat` with
  `Connection: close` measured 7% of direct's requests/s for a reason that was the
  benchmark's, not nat's.
- The lab's bridge no longer runs netfilter's IP hooks on bridged frames (br_netfilter is
  on by default in every namespace of this kernel): a real switch does not, and each hop
  through the balancer paid it once more than direct did.
- `routed`: the client reaching the servers through lb0 as a plain router (no rules, no
  conntrack). It is the floor of any balancer placed in the path: its "added" figure
  is the extra veth/bridge hop and forwarding alone, what nat/fullnat cannot go below.
- Several rounds (`--rounds`, default 3), each running every variant in turn (direct
  first); every figure is the median over the rounds, and each ratio (vs direct, vs
  HAProxy) is the median of the per-round ratios, so a burst of other work on the
  shared machine moves one round, not the result.

Run as root: `.venv/bin/python bench/kernel.py [--quick]` (`make bench` runs it after
the loopback benchmark). Everything it creates lives in namespaces named with a
per-run prefix and is deleted at the end, also on error or Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import peers
import wrk

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "netns"))
from conftest import VIP4, Lab, Node, _build, _teardown  # noqa: E402  (the tests' namespace lab)

FULCRUM = Path(sys.executable).parent / "fulcrum"
SERVERS = ("rs1", "rs2")
VARIANTS = ("direct", "routed", "nat", "fullnat", "dsr", "proxy", "haproxy", "pen")
TRAFFIC = {"keep-alive": False, "close": True}
TICK = os.sysconf("SC_CLK_TCK")
PERF_HZ = 1999  # --profile's sampling rate per CPU


@dataclass
class Row:
    variant: str
    traffic: str
    requests: int = 0
    requests_per_second: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    cpu_us_per_request: float = 0.0  # wrk + servers + balancer, softirq in their context included
    ksoftirqd_us_per_request: float = 0.0  # deferred softirq, machine-wide (upper bound)
    machine_us_per_request: float = 0.0  # /proc/stat user+nice+system+irq+softirq, all CPUs
    others_cpu: float = 0.0  # CPUs' worth of machine time not ours during the run (noise)
    profile: dict[str, float] | None = None  # --profile: µs/req by part of the kernel
    failure: str = ""


def process_ticks(pids: list[str]) -> int:
    """utime + stime of these processes (tick-based: softirq run in their context included)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        total += int(fields[11]) + int(fields[12])
    return total


def lab_ticks(lab: Lab) -> int:
    """CPU ticks of every process in the balancer's and servers' namespaces."""
    pids: list[str] = []
    for name in ("lb0", *SERVERS):
        pids += subprocess.run(["ip", "netns", "pids", lab[name].netns], capture_output=True,
                               text=True, timeout=10).stdout.split()
    return process_ticks(pids)


def machine_ticks() -> int:
    """Busy ticks of the whole machine (/proc/stat's first line): user, nice, system, irq,
    softirq. Idle, iowait and steal are not work done here; guest time is inside user."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[1:8])
    return user + nice + system + irq + softirq


def ksoftirqd_ticks() -> int:
    pids = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()
            and _comm(p).startswith("ksoftirqd/")]
    return process_ticks(pids)


def _comm(path: Path) -> str:
    try:
        return (path / "comm").read_text().strip()
    except OSError:
        return ""


# --profile: kernel functions grouped by the part of the packet path they belong to
# (first matching prefix wins; the order matters: nf_nat_ before nf_, nft_ct before nft_)
PROFILE_GROUPS = (
    ("nat", ("nf_nat", "nft_nat", "nft_masq", "nf_xfrm_me_harder", "masquerade")),
    ("conntrack", ("nf_conntrack", "nf_ct_", "__nf_ct", "__nf_conntrack", "nf_confirm", "init_conntrack",
                   "hash_conntrack", "tcp_in_window", "nf_tcp_", "resolve_normal_ct", "nf_ct", "ipv4_conntrack",
                   "ipv4_confirm", "nft_ct")),
    ("nftables rules", ("nft_", "nf_tables", "__nft", "jhash")),
    ("netfilter hooks", ("nf_hook", "nf_")),
    ("bridge", ("br_", "__br_")),
    ("veth", ("veth_",)),
    ("ip forward/route", ("ip_forward", "ip_route", "fib_", "ip_rcv", "ip_sublist", "ip_list_rcv", "ip_finish",
                          "ip_output", "__ip_finish", "neigh", "ip_neigh", "dst_", "ipv4_dst", "rt_", "__mkroute",
                          "ip_mkroute", "ip_rt", "ip_local_deliver", "ip_protocol_deliver", "__ip_local_out",
                          "ip_local_out", "ip_queue_xmit", "__ip_queue_xmit", "ip_send_check", "ip_make_skb")),
    ("device/skb", ("__netif", "netif_", "__dev_", "dev_", "process_backlog", "net_rx_action", "__napi",
                    "napi_", "skb_", "__skb", "kfree_skb", "__kfree_skb", "consume_skb", "eth_", "gro_",
                    "dev_gro", "kmem_cache", "__alloc_skb", "alloc_skb", "sk_skb", "__build_skb", "build_skb",
                    "___slab", "__slab", "kmalloc", "__kmalloc", "kfree", "page_frag", "skb_release",
                    "__copy_skb", "pskb", "__pskb", "skb_clone")),
)
# the benchmark's processes (fulcrum's comm is its script's name; other python3 on the
# machine is not ours) and ksoftirqd, whose deferred softirq work is partly ours
PROFILE_COMMS = ("wrk", "nginx", "haproxy", "pen", "fulcrum", "ksoftirqd/0", "ksoftirqd/1")


def profile_group(symbol: str, kernel: bool) -> str:
    if not kernel:
        return "user space"
    for group, prefixes in PROFILE_GROUPS:
        if symbol.startswith(prefixes):
            return group
    return "other kernel (tcp, sockets, syscalls, scheduler)"


def parse_perf_report(text: str) -> dict[str, int]:
    """`perf report -n --sort sym` lines (`  1.23%  456  [k] nf_conntrack_in`) -> samples per group."""
    groups: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].endswith("%") or not parts[1].isdigit():
            continue
        group = profile_group(parts[3], parts[2] == "[k]")
        groups[group] = groups.get(group, 0) + int(parts[1])
    return groups


def profile_table(profiles: dict[str, dict[str, float]]) -> str:
    """µs of CPU per request by group, one column per measured variant."""
    names = list(profiles)
    groups = sorted({g for p in profiles.values() for g in p}, key=lambda g: -max(p.get(g, 0.0) for p in profiles.values()))
    out = ["| µs/req | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for group in groups:
        out.append(f"| {group} | " + " | ".join(f"{profiles[n].get(group, 0.0):.1f}" for n in names) + " |")
    out.append("| total | " + " | ".join(f"{sum(profiles[n].values()):.1f}" for n in names) + " |")
    return "\n".join(out)


def wait_port(node: Node, address: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = node.run("python3", "-c", f"import socket; socket.create_connection(('{address}', {port}), 1)",
                         check=False)
        if probe.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answers on {address}:{port} from {node.name}")


def server_endpoints(lab: Lab, ports: int) -> list[str]:
    """The pool: each server host on ports 80, 81, ... (--ports), host by host in turn."""
    return [f"{lab[rs].v4}:{80 + i}" for i in range(ports) for rs in SERVERS]


def start_nginx(lab: Lab, ports: int = 1) -> None:
    for rs in SERVERS:
        argv = peers.nginx_backend(lab.workdir, f"nginx-{rs}", 80)
        conf = Path(argv[argv.index("-c") + 1])
        listen = "".join(f"listen {80 + i} backlog=4096;\n        " for i in range(ports))
        conf.write_text(conf.read_text().replace("listen 127.0.0.1:80 backlog=4096;\n        ", listen))
        lab[rs].popen(*argv, log=lab.workdir / f"nginx-{rs}.log")
    for rs in SERVERS:
        wait_port(lab["client"], lab[rs].v4, 80)


def fulcrum_toml(lab: Lab, topology: str, ports: int = 1) -> str:
    servers = ", ".join(f'"{e}"' for e in server_endpoints(lab, ports))
    return f"""max_connections = 0
[services.bench]
listen = ["{VIP4}:80"]
topology = "{topology}"
pool = "bench"
[pools.bench]
scheduler = "rr"
servers = [{servers}]
health = {{ kind = "tcp", interval = "2s" }}
[kernel]
table = "{lab.prefix}"
[log]
level = "warning"
"""


def quiet_switch(prefix: str) -> None:
    """The lab's bridge forwards frames as a switch does: with br_netfilter in this kernel
    (built in, on by default in every namespace) it ran netfilter's IP hooks on every
    bridged frame, a cost a real switch does not add, and which every hop through the
    balancer paid once more than direct."""
    subprocess.run(["ip", "netns", "exec", f"{prefix}sw", "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0",
                    "net.bridge.bridge-nf-call-ip6tables=0", "net.bridge.bridge-nf-call-arptables=0"],
                   capture_output=True, text=True, timeout=10, check=False)


def settle(lab: Lab) -> None:
    """The same starting state for every measurement: no TIME_WAIT socket left by an
    earlier one (its timestamps would make PAWS refuse SYNs from the same client ports),
    no conntrack entry in the balancer."""
    for name in ("client", "lb0", *SERVERS):
        lab[name].run("ss", "-K", "state", "time-wait", check=False)
    if shutil.which("conntrack"):
        lab["lb0"].run("conntrack", "-F", check=False)


def start_variant(lab: Lab, variant: str, ports: int = 1) -> subprocess.Popen[bytes] | None:
    """Start the balancer of `variant` in the lb namespace (None for direct and routed)."""
    lb = lab["lb0"]
    servers = server_endpoints(lab, ports)
    if variant == "direct":
        return None
    if variant == "routed":  # both directions through lb0, plain forwarding
        for rs in SERVERS:
            lab["client"].run("ip", "route", "replace", f"{lab[rs].v4}/32", "via", lb.v4)
            lab[rs].run("ip", "route", "replace", f"{lab['client'].v4}/32", "via", lb.v4)
        return None
    if variant == "nat":  # the servers answer through the balancer
        for rs in SERVERS:
            lab[rs].run("ip", "route", "replace", f"{lab['client'].v4}/32", "via", lb.v4)
    if variant == "dsr":
        for rs in SERVERS:
            lab[rs].run(str(FULCRUM), "realserver", "setup", "--vip", VIP4,
                        "--state", str(lab.workdir / f"{rs}-rs.json"))
    if variant in ("nat", "fullnat", "dsr", "proxy"):
        conf = lab.workdir / f"{variant}.toml"
        conf.write_text(fulcrum_toml(lab, variant, ports))
        argv = [str(FULCRUM), "run", "-c", str(conf)]
    elif variant == "haproxy":
        conf = lab.workdir / "haproxy.cfg"
        lines = "".join(f"    server s{i} {s}\n" for i, s in enumerate(servers))
        conf.write_text(f"global\n    nbthread 1\n    maxconn 8000\ndefaults\n    mode tcp\n"
                        f"    timeout connect 3s\n    timeout client 30s\n    timeout server 30s\n"
                        f"frontend bench\n    bind {VIP4}:80\n    default_backend pool\n"
                        f"backend pool\n    balance roundrobin\n{lines}")
        argv = ["haproxy", "-f", str(conf), "-db"]
    else:
        argv = ["pen", "-f", "-r", "-x", "10000", f"{VIP4}:80", *servers]
    log = lab.workdir / f"{variant}.log"
    process = lb.popen(*argv, log=log)
    try:
        wait_port(lab["client"], VIP4, 80)
    except RuntimeError as err:
        raise RuntimeError(f"{variant} did not start: {err}: {log.read_text()[-500:]}") from err
    return process


def stop_variant(lab: Lab, variant: str, process: subprocess.Popen[bytes] | None) -> None:
    if process is not None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if variant in ("nat", "routed"):
        for rs in SERVERS:
            lab[rs].run("ip", "route", "del", f"{lab['client'].v4}/32", check=False)
            if variant == "routed":
                lab["client"].run("ip", "route", "del", f"{lab[rs].v4}/32", check=False)
    if variant == "dsr":
        for rs in SERVERS:
            lab[rs].run(str(FULCRUM), "realserver", "teardown", "--state", str(lab.workdir / f"{rs}-rs.json"))
    time.sleep(1.0)  # TIME_WAIT and conntrack settle a little before the next variant


def _parsed(done: list[subprocess.CompletedProcess[str]]) -> list[wrk.WrkResult]:
    try:
        return [wrk.parse(d.stdout) for d in done]
    except wrk.WrkError:
        return []


def measure(lab: Lab, args: argparse.Namespace, targets: list[str], row: Row, close: bool) -> None:
    """wrk from the client to each target at once (direct: one wrk per server, sharing the
    threads and connections, so two nginx serve as they do behind a balancer)."""
    def commands(seconds: int) -> list[list[str]]:
        out = []
        for target in targets:
            argv = wrk.command(80, max(1, args.threads // len(targets)),
                               max(1, args.connections // len(targets)), seconds, close)
            argv[-1] = f"http://{target}/"
            out.append(["ip", "netns", "exec", lab["client"].netns, *argv])
        return out

    def run_all(seconds: int) -> list[subprocess.CompletedProcess[str]]:
        running = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for argv in commands(seconds)]
        done = []
        for process in running:
            out, err = process.communicate(timeout=seconds + 30)
            done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
        return done

    settle(lab)
    run_all(args.warmup)
    perf = None
    if args.profile:  # sampled at a fixed rate on both CPUs, only the benchmark's commands kept
        data = (args.perf_dir or lab.workdir) / f"perf-{row.variant}-{row.traffic}.data"
        perf = subprocess.Popen(["perf", "record", "-a", "-F", str(PERF_HZ), "-o", str(data), "--", "sleep",
                                 str(args.duration)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before, deferred, machine = lab_ticks(lab), ksoftirqd_ticks(), machine_ticks()
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = run_all(args.duration)
    elapsed = time.monotonic() - started
    machine = machine_ticks() - machine
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if perf is not None:
        perf.wait(timeout=args.duration + 60)
        report = subprocess.run(["perf", "report", "-i", str(data), "-n", "--no-children", "--sort", "sym",
                                 "--comm", ",".join(PROFILE_COMMS), "--stdio", "-q"],
                                capture_output=True, text=True, timeout=300, check=False)
        groups = parse_perf_report(report.stdout)
        row.profile = {g: n / PERF_HZ / max(1, sum(r.requests for r in _parsed(done))) * 1e6
                       for g, n in groups.items()}
    ticks, deferred = lab_ticks(lab) - before, ksoftirqd_ticks() - deferred
    try:
        results = [wrk.parse(d.stdout) for d in done]
    except wrk.WrkError as err:
        row.failure = str(err).splitlines()[0]
        return
    row.requests = sum(r.requests for r in results)
    row.requests_per_second = sum(r.requests_per_second for r in results)
    row.p99_ms, row.errors = max(r.p99_ms for r in results), sum(r.errors for r in results)
    wrk_seconds = (wrk_after.ru_utime - wrk_before.ru_utime) + (wrk_after.ru_stime - wrk_before.ru_stime)
    requests = max(row.requests, 1)
    row.cpu_us_per_request = (ticks / TICK + wrk_seconds) / requests * 1e6
    row.ksoftirqd_us_per_request = deferred / TICK / requests * 1e6
    row.machine_us_per_request = machine / TICK / requests * 1e6
    # what the machine did that the benchmark's processes and ksoftirqd did not: other work
    row.others_cpu = max(0.0, machine / TICK - ticks / TICK - wrk_seconds - deferred / TICK) / elapsed


@dataclass
class Summary:
    """A row over the rounds: medians of the figures, medians of the per-round ratios.
    Two CPU figures: the benchmark's processes (softirq in their context included) and
    the whole machine (/proc/stat), each with what it adds to direct's in the same round
    and that over HAProxy's added in the same round."""

    variant: str
    traffic: str
    rounds: int = 0
    requests_per_second: float = 0.0
    versus_direct: float | None = None  # requests/s over direct's in the same round
    # direct's CPU per request over this one's, same round: the requests/s this variant
    # would reach against direct's if the benchmark had the machine's CPUs to itself
    capacity_versus_direct: float | None = None
    cpu_us_per_request: float = 0.0
    added_us_per_request: float = 0.0  # minus direct's in the same round
    added_each_round: tuple[float, ...] = ()
    versus_haproxy: float | None = None  # added over HAProxy's added in the same round
    machine_us_per_request: float = 0.0
    machine_added_us_per_request: float = 0.0
    machine_versus_haproxy: float | None = None
    others_cpu: float = 0.0  # median CPUs' worth of other work during the measurements
    ksoftirqd_us_per_request: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    failure: str = ""


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _against(row: Row, base: Row, peer: Row | None, figure: str) -> tuple[float, float | None]:
    """`figure` of row minus base's, and that over peer's minus base's (None: no peer)."""
    added = getattr(row, figure) - getattr(base, figure)
    if peer is None or peer.failure:
        return added, None
    peer_added = getattr(peer, figure) - getattr(base, figure)
    return added, (added / peer_added if peer_added > 0 else None)


def summarize(rounds: list[list[Row]]) -> list[Summary]:
    """One Summary per (variant, traffic), in the order of the first round."""
    keys = list(dict.fromkeys((r.variant, r.traffic) for rows in rounds for r in rows))
    out = []
    for variant, traffic in keys:
        summary = Summary(variant, traffic)
        figures: dict[str, list[float]] = {}
        for rows in rounds:
            mine = {(r.variant, r.traffic): r for r in rows}
            row = mine.get((variant, traffic))
            if row is None:
                continue
            if row.failure:
                summary.failure = row.failure
                continue
            summary.errors += row.errors
            for name in ("requests_per_second", "cpu_us_per_request", "machine_us_per_request",
                         "others_cpu", "ksoftirqd_us_per_request", "p99_ms"):
                figures.setdefault(name, []).append(getattr(row, name))
            base = mine.get(("direct", traffic))
            if base is None or base.failure or not base.requests:
                continue
            figures.setdefault("versus_direct", []).append(row.requests_per_second / base.requests_per_second)
            if row.cpu_us_per_request > 0:
                figures.setdefault("capacity_versus_direct", []).append(
                    base.cpu_us_per_request / row.cpu_us_per_request)
            peer = mine.get(("haproxy", traffic))
            for figure, added_name, ratio_name in (
                    ("cpu_us_per_request", "added_us_per_request", "versus_haproxy"),
                    ("machine_us_per_request", "machine_added_us_per_request", "machine_versus_haproxy")):
                added, ratio = _against(row, base, peer, figure)
                figures.setdefault(added_name, []).append(added)
                if ratio is not None:
                    figures.setdefault(ratio_name, []).append(ratio)
        if figures.get("requests_per_second"):
            summary.failure = ""  # a failed round is left out; the others count
            summary.rounds = len(figures["requests_per_second"])
        for name, values in figures.items():
            setattr(summary, name, _median(values))
        summary.added_each_round = tuple(figures.get("added_us_per_request", ()))
        out.append(summary)
    return out


def _ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def table(summaries: list[Summary]) -> str:
    """Markdown: per traffic kind, req/s against direct and CPU added per request."""
    out = ["| topology | traffic | req/s | vs direct | CPU-bound vs direct | CPU µs/req | added µs/req | added, each round "
           "| added vs HAProxy | machine µs/req | machine added | machine vs HAProxy | other work, CPUs "
           "| ksoftirqd µs/req | p99 ms |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in summaries:
        if not row.rounds:
            out.append(f"| {row.variant} | {row.traffic} | failed: {row.failure} ||||||||||||")
            continue
        versus = f"{row.versus_direct:.0%}" if row.versus_direct is not None else "-"
        capacity = f"{row.capacity_versus_direct:.0%}" if row.capacity_versus_direct is not None else "-"
        each = " / ".join(f"{a:+.1f}" for a in row.added_each_round) or "-"
        out.append(f"| {row.variant} | {row.traffic} | {row.requests_per_second:,.0f} | {versus} | {capacity} | "
                   f"{row.cpu_us_per_request:.1f} | {row.added_us_per_request:+.1f} | {each} | "
                   f"{_ratio(row.versus_haproxy)} | {row.machine_us_per_request:.1f} | "
                   f"{row.machine_added_us_per_request:+.1f} | {_ratio(row.machine_versus_haproxy)} | "
                   f"{row.others_cpu:.2f} | {row.ksoftirqd_us_per_request:.1f} | {row.p99_ms:.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="every variant once per round; medians reported")
    parser.add_argument("--quick", action="store_true", help="3 s measurements, one round")
    parser.add_argument("--only", default=",".join(VARIANTS))
    parser.add_argument("--traffic", default="keep-alive,close")
    parser.add_argument("--ports", type=int, default=1,
                        help="servers per host (ports 80, 81, ...): a larger pool for the balancers; "
                             "direct and routed still use port 80")
    parser.add_argument("--profile", action="store_true",
                        help="perf record during each run: kernel CPU per request by part of the path "
                             "(perturbs the CPU figures; for finding where the cost is)")
    parser.add_argument("--perf-dir", type=Path, help="--profile: keep perf's data files there")
    parser.add_argument("--summarize", type=Path, metavar="JSON",
                        help="print the table again from a saved kernel-latest.json (no measurement)")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 3, 1
    if args.summarize:
        saved = json.loads(args.summarize.read_text())
        print(table(summarize([[Row(**r) for r in rows] for rows in saved["rounds"]])))
        return 0
    if os.geteuid() != 0:
        print("bench/kernel.py needs root (network namespaces, nftables); skipped", file=sys.stderr)
        return 0
    missing = [p for p in ("nginx", "wrk", "haproxy", "pen", "nft", "ip") if shutil.which(p) is None]
    if missing:
        print(f"bench/kernel.py: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    wanted = [v for v in VARIANTS if v in args.only.split(",") or v == "direct"]  # the baseline always
    prefix = f"fkb{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="fulcrum-kbench-"))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    lab: Lab | None = None
    rounds: list[list[Row]] = []
    try:
        lab = _build(prefix, workdir)
        quiet_switch(prefix)
        lb = lab["lb0"]
        lb.run("ip", "addr", "add", f"{VIP4}/24", "dev", "eth0")
        lb.run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
               "net.ipv4.conf.eth0.send_redirects=0")
        for rs in SERVERS:
            lab[rs].run("sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0",
                        "net.ipv4.conf.eth0.accept_redirects=0")
        start_nginx(lab, args.ports)
        for number in range(1, args.rounds + 1):
            rows: list[Row] = []
            rounds.append(rows)
            for variant in wanted:
                print(f"-- round {number}: {variant}", flush=True)
                process = start_variant(lab, variant, args.ports)
                targets = ([f"{lab[rs].v4}:80" for rs in SERVERS] if variant in ("direct", "routed")
                           else [f"{VIP4}:80"])
                try:
                    for traffic in (t for t in TRAFFIC if t in args.traffic.split(",")):
                        row = Row(variant, traffic)
                        measure(lab, args, targets, row, TRAFFIC[traffic])
                        rows.append(row)
                        print(f"   {traffic}: " + (row.failure or f"{row.requests_per_second:,.0f} req/s, "
                              f"{row.cpu_us_per_request:.1f} µs CPU/req, machine {row.machine_us_per_request:.1f}, "
                              f"others {row.others_cpu:.2f} CPUs, p99 {row.p99_ms:.2f} ms, "
                              f"{row.errors} errors"), flush=True)
                finally:
                    stop_variant(lab, variant, process)
    except KeyboardInterrupt:
        print("interrupted; removing the namespaces", file=sys.stderr)
        return 130
    finally:
        if lab is not None:
            _teardown(prefix, list(lab.nodes.values()))
        else:
            _teardown(prefix, [])
        shutil.rmtree(workdir, ignore_errors=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    summaries = summarize(rounds)
    text = table(summaries)
    print(f"\nkernel topologies, {stamp}, median of {args.rounds} round(s), wrk -t{args.threads} "
          f"-c{args.connections} -d{args.duration}s, 2 nginx servers, load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}\n\n{text}")
    for traffic in TRAFFIC:
        samples: dict[str, dict[str, list[float]]] = {}
        for rows in rounds:
            for row in rows:
                if row.traffic == traffic and row.profile:
                    for group, value in row.profile.items():
                        samples.setdefault(row.variant, {}).setdefault(group, []).append(value)
        if samples:
            medians = {v: {g: _median(values) for g, values in groups.items()} for v, groups in samples.items()}
            text += f"\n\nperf, {traffic}: CPU µs per request by part of the path (median over rounds)\n\n"
            text += profile_table(medians)
            print(text[text.rindex("\n\nperf"):])
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / "kernel-latest.json"
    out.write_text(json.dumps({"date": stamp, "summaries": [asdict(r) for r in summaries],
                               "rounds": [[asdict(r) for r in rows] for rows in rounds]}, indent=1) + "\n")
    (args.results / "kernel-latest.md").write_text(text + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
