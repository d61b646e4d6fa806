"""Side-by-side benchmark: fulcrum beside HAProxy and pen (tcp mode) and beside HAProxy and
Apache mod_proxy_balancer (http mode), all in front of the same nginx backends.

Run with `make bench` (or `.venv/bin/python bench/run.py --help`). Everything runs on
loopback with ephemeral ports in a temporary directory and is stopped at the end, also on
Ctrl-C or error. What is reported is the balancer's CPU time per request and p99 latency,
because on a small shared machine requests/s alone moves from run to run (DESIGN.md,
"Benchmark method")."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import apache
import deps
import peers
import procs
import report
import wrk

BENCH_DIR = Path(__file__).resolve().parent
TRAFFIC = {"keep-alive": False, "close": True}  # name -> send `Connection: close`
START_TIMEOUT = 15.0
BALANCERS = ("fulcrum", "haproxy", "pen", "apache")
PROGRAMS = {"haproxy": "haproxy", "pen": "pen", "apache": "apache2"}  # besides nginx and wrk


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Side-by-side benchmark of fulcrum, HAProxy, pen and Apache")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c (default 50)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured seconds before each")
    parser.add_argument("--quick", action="store_true", help="3 s measurements, 1 s warm-up")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure everything this many times and report the median round")
    parser.add_argument("--backends", type=int, default=2, help="nginx backends (default 2)")
    parser.add_argument("--mode", default="tcp,http",
                        help="comma-separated proxy modes: tcp, http (default both)")
    parser.add_argument("--only", default=",".join(BALANCERS),
                        help="comma-separated balancers to run (default all; pen is tcp only, "
                             "apache http only)")
    parser.add_argument("--traffic", default="keep-alive,close",
                        help="comma-separated traffic kinds: keep-alive, close")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="fulcrum workers for the multi-worker row (default: CPU count)")
    parser.add_argument("--no-shared-state", dest="shared_state", action="store_false",
                        help="skip the tcp rows with lc and pen's client table (state the workers share)")
    parser.add_argument("--fulcrum", default=str(Path(sys.executable).parent / "fulcrum"),
                        help="the fulcrum program to run (default: the venv's)")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--keep-tmp", action="store_true", help="keep configs and logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 3, 1
    for option, value, known in (("--traffic", args.traffic, TRAFFIC), ("--mode", args.mode, peers.MODES),
                                 ("--only", args.only, BALANCERS)):
        unknown = set(value.split(",")) - set(known)
        if unknown:
            parser.error(f"{option}: unknown {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    if not variants(args):
        parser.error(f"no balancer of --only {args.only} runs in --mode {args.mode}")
    return args


def variants(args: argparse.Namespace) -> list[peers.Variant]:
    """The balancers to measure: tcp ones first, then http ones."""
    wanted = set(args.only.split(","))
    found: list[peers.Variant] = []
    for mode in (m for m in peers.MODES if m in args.mode.split(",")):
        if "fulcrum" in wanted:
            found.append(peers.fulcrum_variant(args.fulcrum, 1, mode))
            if args.workers > 1:
                found.append(peers.fulcrum_variant(args.fulcrum, args.workers, mode))
            if mode == "tcp" and args.shared_state:
                # what the workers share (counters for lc, pen's client table) costs
                for clients in (False, True):
                    for workers in sorted({1, args.workers}):
                        found.append(peers.fulcrum_variant(args.fulcrum, workers, mode, "lc", clients))
        if "haproxy" in wanted:
            found += [peers.haproxy_variant(1, mode), peers.haproxy_variant(None, mode)]
        if "pen" in wanted and mode == "tcp":
            found.append(peers.pen_variant())
        if "apache" in wanted and mode == "http":
            found.append(apache.apache_variant())
    return found


def programs_needed(found: list[peers.Variant]) -> set[str]:
    return {"nginx", "wrk"} | {PROGRAMS[v.family] for v in found if v.family in PROGRAMS}


def start_backends(sup: procs.Supervisor, count: int) -> list[int]:
    ports = []
    for index in range(count):
        name, port = f"nginx{index}", procs.free_port()
        proc = sup.start(name, peers.nginx_backend(sup.workdir, name, port))
        try:
            procs.wait_for_port(port, proc, START_TIMEOUT)
        except procs.StartError as exc:
            raise SystemExit(f"{name} did not start: {exc}\n{sup.log_tail(name)}") from exc
        ports.append(port)
    return ports


def start_balancer(sup: procs.Supervisor, variant: peers.Variant,
                   backends: list[int]) -> tuple[subprocess.Popen[bytes], int]:
    """Start it and check one request goes through; raise StartError otherwise."""
    name, port = f"{variant.mode}-{variant.label.replace(' ', '-')}", procs.free_port()
    argv = variant.command(sup.workdir, port, backends)
    env = variant.environment(sup.workdir) if variant.environment else None
    proc = sup.start(name, argv, env)
    try:
        procs.wait_for_port(port, proc, START_TIMEOUT)
        if not any(procs.http_get_ok(port, 2.0) for _ in range(3)):
            raise procs.StartError("listens, but no HTTP 200 came back through it")
    except procs.StartError as exc:
        sup.stop(proc)
        tail = sup.log_tail(name, 3).replace("\n", " | ")
        raise procs.StartError(f"{exc}{': ' + tail if tail else ''}") from exc
    return proc, port


def measure(args: argparse.Namespace, proc: subprocess.Popen[bytes], port: int,
            row: report.Measurement, close: bool) -> None:
    """One warm-up and one measured wrk run; fills `row` (or its `failure`)."""
    try:
        if args.warmup > 0:
            wrk.run(wrk.command(port, args.threads, args.connections, args.warmup, close),
                    args.warmup)
        before = procs.tree_ticks(proc.pid)
        result = wrk.run(wrk.command(port, args.threads, args.connections, args.duration, close),
                         args.duration)
        after = procs.tree_ticks(proc.pid)
    except wrk.WrkError as exc:
        row.failure = str(exc)
        return
    if proc.poll() is not None:
        row.failure = f"balancer exited with status {proc.returncode} during the run"
        return
    row.requests, row.requests_per_second = result.requests, result.requests_per_second
    row.p99_ms, row.errors, row.non_2xx = result.p99_ms, result.socket_errors, result.bad_status
    user, system = procs.cpu_seconds_between(before, after)
    row.cpu_seconds, row.cpu_sys_seconds = user + system, system
    row.processes = len(after)


def run_variant(args: argparse.Namespace, sup: procs.Supervisor, variant: peers.Variant,
                backends: list[int], traffic: list[str]) -> list[report.Measurement]:
    """Start one balancer, measure each traffic kind through it, stop it."""
    print(f"-- {variant.mode}: {variant.label}", flush=True)
    rows = [report.Measurement(variant.mode, kind, variant.label, variant.family,
                               variant.parallelism) for kind in traffic]
    try:
        proc, port = start_balancer(sup, variant, backends)
    except procs.StartError as exc:
        print(f"   did not start: {exc}", flush=True)
        for row in rows:
            row.failure = f"did not start: {exc}"
        return rows
    try:
        for row in rows:
            measure(args, proc, port, row, TRAFFIC[row.traffic])
            figure = (row.failure or f"{row.requests_per_second:,.0f} req/s, "
                      f"{row.cpu_us_per_request:.1f} µs CPU/req, p99 {row.p99_ms:.2f} ms"
                      + (f", {row.errors} socket errors" if row.errors else "")
                      + (f", {row.non_2xx} NON-2xx ANSWERS" if row.non_2xx else ""))
            print(f"   {row.traffic}: {figure}", flush=True)
    finally:
        sup.stop(proc)
    time.sleep(0.5)  # let the stopped balancer's sockets settle before the next one
    return rows


def run_all(args: argparse.Namespace,
            sup: procs.Supervisor) -> tuple[list[report.Measurement], list[report.Measurement]]:
    """(median rows, every round's rows). Each round starts with a different balancer,
    so a slow stretch of a noisy machine does not always hit the same one."""
    backends = start_backends(sup, args.backends)
    traffic = [name for name in TRAFFIC if name in args.traffic.split(",")]
    order = variants(args)
    every: list[report.Measurement] = []
    for round_number in range(args.rounds):
        if args.rounds > 1:
            print(f"round {round_number + 1} of {args.rounds}", flush=True)
        shift = round_number % len(order)
        for variant in order[shift:] + order[:shift]:
            every += run_variant(args, sup, variant, backends, traffic)
    return report.medians(every), every


def settings(args: argparse.Namespace) -> dict[str, Any]:
    cpu_model = next((line.split(":", 1)[1].strip() for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "unknown CPU")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "wrk": f"-t{args.threads} -c{args.connections} -d{args.duration:g}s --latency "
               f"(warm-up {args.warmup:g}s)",
        "backends": args.backends,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "host": f"{cpu_model}, Linux {platform.release()}, Python {platform.python_version()}",
        "clock_ticks_per_second": procs.CLOCK_TICKS_PER_SECOND,
        "load_average_at_start": _load_average(),
        "fulcrum_source": _source_revision(),
    }


def _source_revision() -> str:
    """The commit fulcrum runs from, with "+changes" when the tree is edited (the venv's
    install is editable, so uncommitted source is what gets measured)."""
    try:
        head = subprocess.run(["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        edited = subprocess.run(["git", "-C", str(BENCH_DIR), "status", "--porcelain", "--", "../src"],
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" +changes" if edited else "")


def _load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every figure."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deps.ensure_installed(sorted(programs_needed(variants(args))))
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    run_settings = settings(args)
    workdir = Path(tempfile.mkdtemp(prefix="fulcrum-bench-"))
    sup = procs.Supervisor(workdir)
    try:
        rows, every_round = run_all(args, sup)
    except KeyboardInterrupt:
        print("interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        sup.stop_all()
        if args.keep_tmp:
            print(f"configs and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    run_settings["load_average_at_end"] = _load_average()
    print(f"\nfulcrum benchmark {run_settings['date']}: wrk {run_settings['wrk']}, "
          f"{args.backends} nginx backends, {run_settings['cpus']} CPUs, fulcrum "
          f"{run_settings['fulcrum_source']}, load average "
          f"{run_settings['load_average_at_start']} at start, {run_settings['load_average_at_end']} at end")
    for title, table_rows in report.by_table(rows).items():
        print(f"\n{title}\n{report.text_table(table_rows)}")
    for line in report.http_targets(rows):
        print(line)
    for note in report.failures(rows):
        print(note)
    for path in report.write(args.results, rows, every_round, run_settings):
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
