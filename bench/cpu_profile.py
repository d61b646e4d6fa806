"""Where fulcrum spends its CPU under load: py-spy (or perf) samples of a tcp or http service
under wrk traffic.

An analysis aid, not part of `make bench`. Needs py-spy in the venv
(`.venv/bin/pip install py-spy`; it is deliberately not a project dependency):

    .venv/bin/python bench/cpu_profile.py [--mode http] [--native | --perf] [--traffic close]

For each traffic kind it prints the functions with the most samples on top of the stack
(self) and anywhere in the stack (inclusive), and keeps the collapsed stacks in
bench/results/profile-<mode>-<traffic>.txt (flamegraph.pl or speedscope read them)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import peers
import procs
import run
import wrk


def parse_collapsed(text: str) -> tuple[Counter[str], Counter[str], int]:
    """(self samples, inclusive samples, total) per frame from py-spy's raw output.

    Each line is `frame;frame;...;leaf count`, outermost frame first."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return self_counts, inclusive, total


# libc functions seen on top of samples that are library code rather than system calls
LIBC_NOT_SYSCALLS = ("malloc", "free", "cfree", "calloc", "realloc", "mem", "str", "pthread_",
                     "_int_", "__")


def leaf_kind(frame: str) -> str:
    """What a sample was doing: a system call (a libc leaf), Python code, or C code."""
    name, _, where = frame.partition(" (")
    if where.startswith("libc.so"):
        if name.startswith("0x"):
            return "libc (unnamed)"
        if not name.startswith(LIBC_NOT_SYSCALLS):
            return f"syscall {name}"
    if ".py:" in where:
        return "Python code"
    return "C code (uvloop, libuv, CPython)"


def kinds(self_counts: Counter[str]) -> Counter[str]:
    by_kind: Counter[str] = Counter()
    for frame, count in self_counts.items():
        by_kind[leaf_kind(frame)] += count
    return by_kind


def top_lines(title: str, counts: Counter[str], total: int, limit: int) -> list[str]:
    lines = [title]
    for frame, count in counts.most_common(limit):
        lines.append(f"  {100.0 * count / total:5.1f}%  {frame}")
    return lines


def parse_perf_report(text: str) -> list[tuple[float, str]]:
    """(percent, name) rows of `perf report --stdio -q` sorted by one key (dso or symbol)."""
    rows = []
    for line in text.splitlines():
        percent, _, name = line.strip().partition("%")
        try:
            rows.append((float(percent), name.strip()))
        except ValueError:
            continue
    return rows


def perf_lines(data: Path, top: int) -> list[str]:
    """CPU time by library (the kernel is one) and by symbol, from a `perf record` file."""
    lines = []
    for key, title, limit in (("dso", "CPU time by library (perf):", 8),
                              ("sym", "CPU time by symbol (perf; [k] kernel, [.] user):", top)):
        text = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", key,
                               "--stdio", "-q", "-g", "none"],
                              capture_output=True, text=True, timeout=300, check=True).stdout
        lines.append(title)
        lines += [f"  {percent:5.1f}%  {name}" for percent, name in parse_perf_report(text)[:limit]]
    return lines


def sampler(args: argparse.Namespace, pid: int, out: Path) -> list[str]:
    """The command that samples fulcrum (and its workers) for args.duration seconds."""
    if args.perf:
        pids = ",".join(str(p) for p in procs.tree_ticks(pid))
        return ["perf", "record", "-q", "-F", "999", "-p", pids, "-o", str(out),
                "--", "sleep", str(args.duration)]
    spy = [args.py_spy, "record", "--pid", str(pid), "--duration", str(args.duration),
           "--rate", str(args.rate), "--format", "raw", "--function", "--output", str(out)]
    if args.native:
        spy.append("--native")
    if args.workers > 1:
        spy.append("--subprocesses")
    return spy


def profile(args: argparse.Namespace, pid: int, port: int, close: bool, out: Path) -> str:
    load = subprocess.Popen(
        wrk.command(port, args.threads, args.connections, args.duration + 2, close),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)  # sample the steady state, not wrk's connection ramp-up
        subprocess.run(sampler(args, pid, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=args.duration + 30, check=True)
        report_text, _ = load.communicate(timeout=args.duration + 30)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait(timeout=10)
    return report_text


def main() -> int:
    parser = argparse.ArgumentParser(description="py-spy profile of fulcrum under wrk load")
    parser.add_argument("--duration", type=int, default=10, help="seconds sampled per traffic kind")
    parser.add_argument("--mode", choices=peers.MODES, default="tcp", help="the service's mode")
    parser.add_argument("--traffic", default="keep-alive,close")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--backends", type=int, default=2)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="include C frames (uvloop, ...)")
    parser.add_argument("--perf", action="store_true",
                        help="sample CPU time with perf instead of py-spy: by library and symbol")
    parser.add_argument("--fulcrum", default=str(Path(sys.executable).parent / "fulcrum"))
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--results", type=Path, default=run.BENCH_DIR / "results")
    args = parser.parse_args()
    args.py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if args.perf and shutil.which("perf") is None:
        raise SystemExit("perf is not installed (apt-get install linux-perf)")
    if not args.perf and args.py_spy is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    args.results.mkdir(parents=True, exist_ok=True)
    fulcrum = peers.fulcrum_variant(args.fulcrum, args.workers, args.mode)
    workdir = Path(tempfile.mkdtemp(prefix="fulcrum-profile-"))
    sup = procs.Supervisor(workdir)
    try:
        backends = run.start_backends(sup, args.backends)
        proc, port = run.start_balancer(sup, fulcrum, backends)
        for traffic in args.traffic.split(","):
            suffix = "perf.data" if args.perf else "txt"
            out = args.results / f"profile-{args.mode}-{traffic}.{suffix}"
            result = wrk.parse(profile(args, proc.pid, port, run.TRAFFIC[traffic], out))
            if args.perf:
                print(f"\n== {args.mode} {traffic}: {result.requests_per_second:,.0f} req/s "
                      f"while sampled; samples in {out}")
                print("\n".join(perf_lines(out, args.top)))
                continue
            self_counts, inclusive, total = parse_collapsed(out.read_text())
            print(f"\n== {args.mode} {traffic}: {result.requests_per_second:,.0f} req/s while sampled; "
                  f"{total} samples; stacks in {out}")
            print("\n".join(top_lines("self (on top of the stack):", self_counts, total, args.top)))
            if args.native:
                print("\n".join(top_lines("by kind of work:", kinds(self_counts), total, args.top)))
            below_main = Counter({f: n for f, n in inclusive.items() if n < total})
            print("\n".join(top_lines("inclusive (frames on every stack left out):", below_main,
                                       total, args.top)))
    finally:
        sup.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
