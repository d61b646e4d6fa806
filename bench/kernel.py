"""Benchmark of the kernel topologies (nat, fullnat, dsr) beside the userspace balancers
(fulcrum's proxy topology, HAProxy, pen), in network namespaces: a client (wrk), a
balancer and two nginx servers on one bridge, addresses from 198.18.0.0/15 only.

A kernel topology's cost cannot be read from the balancer's process: the work is done in
softirq context. The issue asked for the whole machine's CPU from /proc/stat; on this
shared machine (2 CPUs, other engineers' work keeping both busy) that figure measures
their work, not ours. So the figure is the CPU of every process of the benchmark - wrk
(from its rusage), the nginx servers and the balancer (user + system from /proc/<pid>/stat
of every process in their namespaces) - which, with tick-based accounting
(CONFIG_IRQ_TIME_ACCOUNTING off, as on this kernel), includes the softirq work the kernel
does in their context: the veth, bridge, conntrack and nftables work of each packet runs
in the sending task's softirq. Softirq work deferred to ksoftirqd is not attributable and
is shown beside (machine-wide, so an upper bound). "added" is the figure minus the same
for the client talking straight to one server ("direct"): what the balancer adds.

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
VARIANTS = ("direct", "nat", "fullnat", "dsr", "proxy", "haproxy", "pen")
TRAFFIC = {"keep-alive": False, "close": True}
TICK = os.sysconf("SC_CLK_TCK")


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


def ksoftirqd_ticks() -> int:
    pids = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()
            and _comm(p).startswith("ksoftirqd/")]
    return process_ticks(pids)


def _comm(path: Path) -> str:
    try:
        return (path / "comm").read_text().strip()
    except OSError:
        return ""


def wait_port(node: Node, address: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = node.run("python3", "-c", f"import socket; socket.create_connection(('{address}', {port}), 1)",
                         check=False)
        if probe.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answers on {address}:{port} from {node.name}")


def start_nginx(lab: Lab) -> None:
    for rs in SERVERS:
        argv = peers.nginx_backend(lab.workdir, f"nginx-{rs}", 80)
        conf = Path(argv[argv.index("-c") + 1])
        conf.write_text(conf.read_text().replace("listen 127.0.0.1:80", "listen 80"))
        lab[rs].popen(*argv, log=lab.workdir / f"nginx-{rs}.log")
    for rs in SERVERS:
        wait_port(lab["client"], lab[rs].v4, 80)


def fulcrum_toml(lab: Lab, topology: str) -> str:
    servers = ", ".join(f'"{lab[rs].v4}:80"' for rs in SERVERS)
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


def start_variant(lab: Lab, variant: str) -> subprocess.Popen[bytes] | None:
    """Start the balancer of `variant` in the lb namespace (None for direct)."""
    lb = lab["lb0"]
    servers = [f"{lab[rs].v4}:80" for rs in SERVERS]
    if variant == "direct":
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
        conf.write_text(fulcrum_toml(lab, variant))
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
    if variant == "nat":
        for rs in SERVERS:
            lab[rs].run("ip", "route", "del", f"{lab['client'].v4}/32", check=False)
    if variant == "dsr":
        for rs in SERVERS:
            lab[rs].run(str(FULCRUM), "realserver", "teardown", "--state", str(lab.workdir / f"{rs}-rs.json"))
    time.sleep(1.0)  # TIME_WAIT and conntrack settle a little before the next variant


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

    run_all(args.warmup)
    before, deferred = lab_ticks(lab), ksoftirqd_ticks()
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = run_all(args.duration)
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
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


def table(rows: list[Row]) -> str:
    """Markdown: per traffic kind, req/s against direct and CPU added per request."""
    direct = {r.traffic: r for r in rows if r.variant == "direct"}
    haproxy = {r.traffic: r for r in rows if r.variant == "haproxy"}
    out = ["| topology | traffic | req/s | vs direct | CPU µs/req | added µs/req | added vs HAProxy | ksoftirqd µs/req | p99 ms |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if row.failure:
            out.append(f"| {row.variant} | {row.traffic} | failed: {row.failure} ||||||")
            continue
        base = direct.get(row.traffic)
        added = row.cpu_us_per_request - base.cpu_us_per_request if base else 0.0
        peer = haproxy.get(row.traffic)
        peer_added = peer.cpu_us_per_request - base.cpu_us_per_request if peer and base else 0.0
        ratio = f"{added / peer_added:.2f}" if peer_added > 0 else "-"
        versus = f"{row.requests_per_second / base.requests_per_second:.0%}" if base else "-"
        out.append(f"| {row.variant} | {row.traffic} | {row.requests_per_second:,.0f} | {versus} | "
                   f"{row.cpu_us_per_request:.1f} | {added:+.1f} | {ratio} | {row.ksoftirqd_us_per_request:.1f} | "
                   f"{row.p99_ms:.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="3 s measurements")
    parser.add_argument("--only", default=",".join(VARIANTS))
    parser.add_argument("--traffic", default="keep-alive,close")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 3
    if os.geteuid() != 0:
        print("bench/kernel.py needs root (network namespaces, nftables); skipped", file=sys.stderr)
        return 0
    missing = [p for p in ("nginx", "wrk", "haproxy", "pen", "nft", "ip") if shutil.which(p) is None]
    if missing:
        print(f"bench/kernel.py: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    wanted = [v for v in VARIANTS if v in args.only.split(",")]
    prefix = f"fkb{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="fulcrum-kbench-"))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    lab: Lab | None = None
    rows: list[Row] = []
    try:
        lab = _build(prefix, workdir)
        lb = lab["lb0"]
        lb.run("ip", "addr", "add", f"{VIP4}/24", "dev", "eth0")
        lb.run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
               "net.ipv4.conf.eth0.send_redirects=0")
        for rs in SERVERS:
            lab[rs].run("sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0",
                        "net.ipv4.conf.eth0.accept_redirects=0")
        start_nginx(lab)
        for variant in wanted:
            print(f"-- {variant}", flush=True)
            process = start_variant(lab, variant)
            targets = ([f"{lab[rs].v4}:80" for rs in SERVERS] if variant == "direct" else [f"{VIP4}:80"])
            try:
                for traffic in (t for t in TRAFFIC if t in args.traffic.split(",")):
                    row = Row(variant, traffic)
                    measure(lab, args, targets, row, TRAFFIC[traffic])
                    rows.append(row)
                    print(f"   {traffic}: " + (row.failure or f"{row.requests_per_second:,.0f} req/s, "
                          f"{row.cpu_us_per_request:.1f} µs CPU/req, p99 {row.p99_ms:.2f} ms, "
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
    text = table(rows)
    print(f"\nkernel topologies, {stamp}, wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
          f"2 nginx servers, load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}\n\n{text}")
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / "kernel-latest.json"
    out.write_text(json.dumps({"date": stamp, "rows": [asdict(r) for r in rows]}, indent=1) + "\n")
    (args.results / "kernel-latest.md").write_text(text + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
