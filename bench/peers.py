"""The processes under test: nginx backends and the balancers put in front of them.

Each balancer is a `Variant`: a label for the tables and a function that writes its
configuration into the run's temporary directory and returns the command line. All
of them round-robin over the same backends in plain TCP mode, so they do the same work."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

NGINX_BODY = "ok\n"


def nginx_backend(workdir: Path, name: str, port: int) -> list[str]:
    """One nginx instance with one worker, answering every request with a small fixed body.

    Everything (pid, logs, temp files) lives under its own prefix in the run's directory;
    the system configuration is never read. keepalive_requests is raised so that nginx does
    not close keep-alive connections during a run (through a TCP relay that would turn
    keep-alive traffic into partly new-connection traffic)."""
    prefix = workdir / name
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(f"""\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "{NGINX_BODY.strip()}\\n"; }}
    }}
}}
""")
    return ["nginx", "-p", str(prefix), "-e", str(prefix / "error.log"),
            "-c", str(conf), "-g", "daemon off;"]


@dataclass(frozen=True)
class Variant:
    """One balancer configuration to measure."""

    label: str
    family: str  # "fulcrum", "haproxy" or "pen": used to pair rows for the ratios
    parallelism: int  # threads or worker processes it may use
    command: Callable[[Path, int, list[int]], list[str]]


def fulcrum_variant(fulcrum: str, workers: int) -> Variant:
    def command(workdir: Path, port: int, backends: list[int]) -> list[str]:
        conf = workdir / f"fulcrum-w{workers}.toml"
        servers = ", ".join(f'"127.0.0.1:{p}"' for p in backends)
        conf.write_text(f"""\
max_connections = 0
workers = {workers}

[services.bench]
listen = ["127.0.0.1:{port}"]
pool = "bench"

[pools.bench]
scheduler = "rr"
servers = [{servers}]

[pools.bench.health]
kind = "none"

[log]
level = "warning"
""")
        return [fulcrum, "run", "-c", str(conf)]

    return Variant(f"fulcrum workers={workers}", "fulcrum", workers, command)


def haproxy_variant(nbthread: int | None) -> Variant:
    """HAProxy in TCP mode; `nbthread=None` keeps its default (one thread per CPU)."""
    threads_line = f"    nbthread {nbthread}\n" if nbthread else ""
    tag = f"nbthread={nbthread}" if nbthread else "default threads"

    def command(workdir: Path, port: int, backends: list[int]) -> list[str]:
        conf = workdir / f"haproxy-{nbthread or 'default'}.cfg"
        servers = "".join(f"    server s{i} 127.0.0.1:{p}\n" for i, p in enumerate(backends))
        conf.write_text(f"""\
global
{threads_line}    maxconn 4000

defaults
    mode tcp
    timeout connect 3s
    timeout client 30s
    timeout server 30s

frontend bench
    bind 127.0.0.1:{port}
    default_backend pool

backend pool
    balance roundrobin
{servers}""")
        return ["haproxy", "-f", str(conf), "-db"]

    return Variant(f"haproxy {tag}", "haproxy", nbthread or (os.cpu_count() or 1), command)


def pen_variant() -> Variant:
    """pen in the foreground (-f), plain round robin without its client table (-r).

    -x raises its 500-connection default so it never refuses wrk's connections."""

    def command(workdir: Path, port: int, backends: list[int]) -> list[str]:
        servers = [f"127.0.0.1:{p}" for p in backends]
        return ["pen", "-f", "-r", "-x", "10000", f"127.0.0.1:{port}", *servers]

    return Variant("pen", "pen", 1, command)
