"""System calls per request for each balancer, counted with `strace -c` under light wrk load.

An analysis aid, not part of `make bench`: strace slows the traced process a lot, so
only the counts mean anything here, not the time. Needs strace (Debian package strace).

    .venv/bin/python bench/syscalls.py [--only fulcrum,pen] [--traffic close]"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import procs
import run
import wrk

# one row of strace -c's table: % time, seconds, usecs/call, calls, [errors], syscall
_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def parse_strace_summary(text: str) -> Counter[str]:
    """Calls per system call from `strace -c` output (the total row left out)."""
    calls: Counter[str] = Counter()
    for line in text.splitlines():
        match = _ROW.match(line)
        if match and match.group(2) != "total":
            calls[match.group(2)] += int(match.group(1))
    return calls


def count(pid: int, port: int, close: bool, seconds: int, out: Path) -> tuple[Counter[str], int]:
    """(calls by name, requests served) while wrk drives 10 connections for `seconds`."""
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), "-p", str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # strace attaches to every thread before the load starts
        result = wrk.run(wrk.command(port, 1, 10, seconds, close), seconds)
    finally:
        tracer.terminate()  # strace detaches and writes its summary
        tracer.wait(timeout=30)
    return parse_strace_summary(out.read_text()), result.requests


def main() -> int:
    parser = argparse.ArgumentParser(description="system calls per request, per balancer")
    parser.add_argument("--only", default="fulcrum,haproxy,pen")
    parser.add_argument("--mode", default="tcp", help="comma-separated: tcp, http")
    parser.add_argument("--traffic", default="keep-alive,close")
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--fulcrum", default=str(Path(sys.executable).parent / "fulcrum"))
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    if shutil.which("strace") is None:
        raise SystemExit("strace is not installed (apt-get install strace)")
    args.workers = 1  # one process: per-request counts are what matter here
    variants = [v for v in run.variants(args) if v.parallelism == 1]
    workdir = Path(tempfile.mkdtemp(prefix="fulcrum-syscalls-"))
    sup = procs.Supervisor(workdir)
    try:
        backends = run.start_backends(sup, 2)
        for variant in variants:
            proc, port = run.start_balancer(sup, variant, backends)
            try:
                for traffic in args.traffic.split(","):
                    calls, requests = count(proc.pid, port, run.TRAFFIC[traffic], args.duration,
                                            workdir / "strace.txt")
                    per = {name: n / max(requests, 1) for name, n in calls.most_common(args.top)}
                    print(f"{variant.mode} {variant.label}, {traffic}: {sum(calls.values()) / max(requests, 1):.1f} "
                          f"calls/request ({requests} requests): "
                          + ", ".join(f"{name} {n:.2f}" for name, n in per.items()), flush=True)
            finally:
                sup.stop(proc)
    finally:
        sup.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
