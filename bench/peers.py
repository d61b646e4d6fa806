"""The processes under test: nginx backends and the balancers put in front of them.

Each balancer is a `Variant`: a label for the tables, the mode it proxies in, and a
function that writes its configuration into the run's temporary directory and returns the
command line. In each mode all of them round-robin over the same backends, so they do the
same work: tcp (fulcrum, HAProxy mode tcp, pen) relays bytes; http (fulcrum mode http,
HAProxy mode http, Apache mod_proxy_balancer) parses every request and response, adds
X-Forwarded-For and keeps its own keep-alive connections to the servers."""

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


MODES = ("tcp", "http")


@dataclass(frozen=True)
class Variant:
    """One balancer configuration to measure."""

    label: str
    mode: str  # "tcp" or "http": the table it belongs to
    family: str  # "fulcrum", "haproxy", "pen" or "apache": used to pair rows for the ratios
    parallelism: int  # threads or worker processes it may use
    command: Callable[[Path, int, list[int]], list[str]]
    # extra environment of the process, from the run's directory (None: the bench's own)
    environment: Callable[[Path], dict[str, str]] | None = None


def fulcrum_variant(fulcrum: str, workers: int, mode: str = "tcp", scheduler: str = "rr",
                    clients: bool = False) -> Variant:
    """A fulcrum service in `mode`; for http the defaults of `Http` (strict parsing,
    X-Forwarded-*, Location rewriting, a pool of keep-alive connections to the servers).
    `scheduler` lc and `clients` (pen's client table) measure the state the workers share
    (src/fulcrum/shared/) against one worker's own."""
    kind = scheduler + ("+clients" if clients else "")
    sticky = '\n[pools.bench.sticky]\nmode = "source"\n' if clients else ""

    def command(workdir: Path, port: int, backends: list[int]) -> list[str]:
        conf = workdir / f"fulcrum-{mode}-{kind}-w{workers}.toml"
        servers = ", ".join(f'"127.0.0.1:{p}"' for p in backends)
        conf.write_text(f"""\
max_connections = 0
workers = {workers}

[services.bench]
listen = ["127.0.0.1:{port}"]
mode = "{mode}"
pool = "bench"

[pools.bench]
scheduler = "{scheduler}"
servers = [{servers}]
{sticky}
[pools.bench.health]
kind = "none"

[log]
level = "warning"
""")
        return [fulcrum, "run", "-c", str(conf)]

    label = f"fulcrum workers={workers}" if kind == "rr" else f"fulcrum {kind} workers={workers}"
    return Variant(label, mode, "fulcrum", workers, command)


# HAProxy's http mode: keep-alive on both sides is its default (`option http-keep-alive`,
# server connections shared under `http-reuse safe`); `option forwardfor` adds the
# X-Forwarded-For header that fulcrum and Apache add too.
HAPROXY_HTTP_DEFAULTS = """\
    mode http
    option http-keep-alive
    option forwardfor
    timeout http-request 10s
    timeout http-keep-alive 60s
"""


def haproxy_variant(nbthread: int | None, mode: str = "tcp") -> Variant:
    """HAProxy in `mode`; `nbthread=None` keeps its default (one thread per CPU)."""
    threads_line = f"    nbthread {nbthread}\n" if nbthread else ""
    tag = f"nbthread={nbthread}" if nbthread else "default threads"
    mode_lines = HAPROXY_HTTP_DEFAULTS if mode == "http" else "    mode tcp\n"

    def command(workdir: Path, port: int, backends: list[int]) -> list[str]:
        conf = workdir / f"haproxy-{mode}-{nbthread or 'default'}.cfg"
        servers = "".join(f"    server s{i} 127.0.0.1:{p}\n" for i, p in enumerate(backends))
        conf.write_text(f"""\
global
{threads_line}    maxconn 4000

defaults
{mode_lines}    timeout connect 3s
    timeout client 30s
    timeout server 30s

frontend bench
    bind 127.0.0.1:{port}
    default_backend pool

backend pool
    balance roundrobin
{servers}""")
        return ["haproxy", "-f", str(conf), "-db"]

    return Variant(f"haproxy {tag}", mode, "haproxy", nbthread or (os.cpu_count() or 1), command)


def pen_variant() -> Variant:
    """pen in the foreground (-f), plain round robin without its client table (-r).

    -x raises its 500-connection default so it never refuses wrk's connections."""

    def command(workdir: Path, port: int, backends: list[int]) -> list[str]:
        servers = [f"127.0.0.1:{p}" for p in backends]
        return ["pen", "-f", "-r", "-x", "10000", f"127.0.0.1:{port}", *servers]

    return Variant("pen", "tcp", "pen", 1, command)
