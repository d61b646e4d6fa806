"""Does a busy admin plane delay the proxy? Measures, does not assert.

One fulcrum node (tcp service, two nginx backends, an [admin] section) under the same
wrk load twice: with the admin listener idle, then while several clients hammer it
(the status page and its htmx fragment rendered by Jinja2, /metrics, the status API
with HTTP Basic, wrong passwords that cost scrypt until the limiter stops them).
A control round runs the same clients against a static file of the admin listener (the
same CPU taken from a 2-core machine, nothing asked of the node): if "admin busy" is no
worse than "static busy", what slows the proxy is CPU competition, not the node's loop.
Printed per round: proxy requests/s and p99, the CPU seconds the node's process spent
(and per proxied request: what the admin plane would raise if it burdened the node's
loop), and the CPU seconds of the admin process. The admin plane runs in its own process, so the load
lands there; the node's loop answers at most one `status` per STATUS_TTL (0.5 s).

    .venv/bin/python bench/admin_isolation.py [--seconds 8] [--clients 8] [--pin]"""

from __future__ import annotations

import argparse
import base64
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import peers
import procs
import wrk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from fulcrum.admin.auth import hash_password  # noqa: E402

USER, PASSWORD = "bench", "bench-password"


def node_config(port: int, admin: int, backends: list[int], state: Path) -> str:
    servers = ", ".join(f'"127.0.0.1:{p}"' for p in backends)
    return f"""\
max_connections = 0
[services.bench]
listen = ["127.0.0.1:{port}"]
pool = "bench"
[pools.bench]
servers = [{servers}]
[pools.bench.health]
kind = "tcp"
interval = "1s"
[log]
level = "warning"
[admin]
listen = ["127.0.0.1:{admin}"]
state_dir = "{state}"
[admin.users]
{USER} = "{hash_password(PASSWORD)}"
"""


NODE_PATHS = ["/", "/ui/status", "/metrics", "/api/v1/status", "/config/edit/pool:bench"]
STATIC_PATHS = ["/static/htmx.min.js"]  # the control: the same clients, nothing asks the node


def hammer(base: str, stop: threading.Event, counts: list[int], index: int, paths: list[str]) -> None:
    """One client: pages, metrics, the API, and now and then a wrong password."""
    good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    bad = "Basic " + base64.b64encode(f"{USER}:wrong-{index}".encode()).decode()
    n = 0
    while not stop.is_set():
        path = paths[n % len(paths)]
        auth = bad if n % 25 == 24 and paths is NODE_PATHS else good
        request = urllib.request.Request(base + path, headers={"Authorization": auth})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
        except (urllib.error.URLError, OSError):
            pass  # 401/429 for the wrong passwords
        n += 1
    counts[index] = n


def _client(base: str, stop: Any, count: Any, index: int, paths: list[str], pin: bool) -> None:
    import os

    if pin:
        os.sched_setaffinity(0, {1})
    counts = [0]
    flag = threading.Event()
    worker = threading.Thread(target=hammer, args=(base, flag, counts, 0, paths), daemon=True)
    worker.start()
    stop.wait()
    flag.set()
    worker.join(15)
    count.value = counts[0]


def start_clients(base: str, clients: int, paths: list[str], pin: bool) -> tuple[Any, list[Any], list[Any]]:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    stop = context.Event()
    counts = [context.Value("i", 0) for _ in range(clients)]
    workers = [context.Process(target=_client, args=(base, stop, counts[i], i, paths, pin), daemon=True)
               for i in range(clients)]
    for worker in workers:
        worker.start()
    return stop, counts, workers


def probe(port: int, seconds: float) -> tuple[int, float, float, float]:
    """Requests one at a time through the proxy (no saturation): (count, p50, p99, max) in ms.
    With the node alone on its CPU, what delays these is the node's own loop."""
    import socket

    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            while sock.recv(4096):
                pass
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.002)
    latencies.sort()
    return (len(latencies), latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)],
            latencies[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--probe", action="store_true",
                        help="sequential requests instead of wrk: latency of an unsaturated proxy")
    parser.add_argument("--pin", action="store_true", help="node on CPU 0, everything else on CPU 1")
    parser.add_argument("--paths", help="comma-separated admin paths instead of the standard rounds")
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("nginx"):
        print("needs wrk and nginx (apt-get install wrk nginx-light)")
        return 1
    fulcrum = str(Path(sys.executable).with_name("fulcrum"))
    workdir = Path(tempfile.mkdtemp(prefix="fulcrum-admin-bench-"))
    supervisor = procs.Supervisor(workdir)
    try:
        backends = [procs.free_port() for _ in range(2)]
        for i, port in enumerate(backends):
            proc = supervisor.start(f"nginx{i}", peers.nginx_backend(workdir, f"nginx{i}", port))
            procs.wait_for_port(port, proc, 10)
        port, admin = procs.free_port(), procs.free_port()
        conf = workdir / "fulcrum.toml"
        conf.write_text(node_config(port, admin, backends, workdir / "state"))
        node = supervisor.start("fulcrum", [fulcrum, "run", "-c", str(conf)])
        procs.wait_for_port(admin, node, 30)
        if args.pin:
            # The node's process alone on CPU 0; everything else (its admin process, nginx,
            # wrk, the admin clients) on CPU 1: what is left is the admin plane's effect on
            # the node's loop, not two busy programs sharing a 2-core machine.
            import os

            # With --probe, the probe (this process) and nginx join the node on CPU 0 (all
            # three nearly idle at one request at a time): CPU 1 holds only the admin load.
            near = {0} if args.probe else {1}
            os.sched_setaffinity(0, near)
            for pid in procs.tree_ticks(node.pid):
                os.sched_setaffinity(pid, {0} if pid == node.pid else {1})
            for proc in supervisor._procs:
                if proc is not node:
                    os.sched_setaffinity(proc.pid, near)
        base = f"http://127.0.0.1:{admin}"
        print(f"{'round':<14} {'req/s':>9} {'p99 ms':>8} {'node cpu s':>11} {'node us/req':>12} "
              f"{'admin cpu s':>12} {'admin req':>10}")
        rounds = [("admin idle", 0, NODE_PATHS), ("admin busy", args.clients, NODE_PATHS),
                  ("static busy", args.clients, STATIC_PATHS), ("admin idle", 0, NODE_PATHS),
                  ("admin busy", args.clients, NODE_PATHS), ("static busy", args.clients, STATIC_PATHS)]
        if args.paths:
            rounds = [("admin idle", 0, NODE_PATHS)] + [
                (path, args.clients, [path]) for path in args.paths.split(",")]
        for label, clients, paths in rounds:
            # the admin clients are processes of their own (the probe must not wait for a GIL)
            stop, counts, threads = start_clients(base, clients, paths, args.pin)
            time.sleep(0.5 if clients else 0)
            before = procs.tree_ticks(node.pid)
            if args.probe:
                count, p50, p99, worst = probe(port, args.seconds)
                after = procs.tree_ticks(node.pid)
                stop.set()
                for thread in threads:
                    thread.join(15)
                print(f"{label:<14} {count:>6} requests one at a time: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
                      f"max {worst:.2f} ms; admin requests {sum(c.value for c in counts)}")
                continue
            command = wrk.command(port, 2, args.connections, args.seconds, close=False)
            result = wrk.run(["taskset", "-c", "1", *command] if args.pin else command, args.seconds)
            after = procs.tree_ticks(node.pid)
            stop.set()
            for thread in threads:
                thread.join(15)
            node_cpu = sum(procs.cpu_seconds_between({node.pid: before.get(node.pid, (0, 0))},
                                                     {node.pid: after[node.pid]}))
            admin_pids = [pid for pid in after if pid != node.pid]
            admin_cpu = sum(procs.cpu_seconds_between({p: before.get(p, (0, 0)) for p in admin_pids},
                                                      {p: after[p] for p in admin_pids}))
            per_request = node_cpu / result.requests * 1e6 if result.requests else 0.0
            print(f"{label:<14} {result.requests_per_second:>9.0f} {result.p99_ms:>8.2f} "
                  f"{node_cpu:>11.2f} {per_request:>12.1f} {admin_cpu:>12.2f} {sum(c.value for c in counts):>10}")
    finally:
        supervisor.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
