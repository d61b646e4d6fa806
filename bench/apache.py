"""Apache httpd with mod_proxy_balancer (Debian's apache2) as the http-mode peer.

It runs from its own configuration file in the run's directory (ServerRoot, PidFile, ErrorLog
and runtime files there, Listen on the port given), in the foreground, with the environment
Debian's apache2ctl takes from /etc/apache2/envvars; /etc/apache2 is never read. The
configuration does what fulcrum's http service does by default: round robin over the same
servers (byrequests), Host kept (ProxyPreserveHost On), X-Forwarded-For added (mod_proxy
does that by default), Location rewritten (ProxyPassReverse), keep-alive on both sides."""

from __future__ import annotations

from pathlib import Path

from peers import Variant

MODULES_DIR = Path("/usr/lib/apache2/modules")
# authz_core: without it every request fails with "couldn't check user" (AH00025)
MODULES = ("mpm_event", "authz_core", "proxy", "proxy_http", "proxy_balancer", "lbmethod_byrequests",
           "slotmem_shm")
# mpm_event with a fixed set of processes: with spare-thread limits that never trigger, no
# child is started or stopped during a run, so the /proc snapshots of its tree see all the
# CPU it spends. 2 x 32 threads serve wrk's 50 connections (idle keep-alive connections
# wait in the event loop, not on a thread).
SERVERS = 2
THREADS_PER_CHILD = 32


def environment(workdir: Path) -> dict[str, str]:
    """What /etc/apache2/envvars exports, pointed at the run's directory."""
    home = workdir / "apache"
    return {"APACHE_RUN_USER": "www-data", "APACHE_RUN_GROUP": "www-data",
            "APACHE_PID_FILE": str(home / "apache2.pid"), "APACHE_RUN_DIR": str(home),
            "APACHE_LOCK_DIR": str(home), "APACHE_LOG_DIR": str(home), "LANG": "C"}


def config(home: Path, port: int, backends: list[int]) -> str:
    modules = "".join(f"LoadModule {name}_module {MODULES_DIR}/mod_{name}.so\n" for name in MODULES)
    members = "".join(f"    BalancerMember http://127.0.0.1:{p}\n" for p in backends)
    threads = SERVERS * THREADS_PER_CHILD
    return f"""\
ServerRoot {home}
ServerName localhost
PidFile ${{APACHE_PID_FILE}}
DefaultRuntimeDir ${{APACHE_RUN_DIR}}
ErrorLog ${{APACHE_LOG_DIR}}/error.log
LogLevel warn
User ${{APACHE_RUN_USER}}
Group ${{APACHE_RUN_GROUP}}
Listen 127.0.0.1:{port}
{modules}
StartServers {SERVERS}
ServerLimit {SERVERS}
ThreadsPerChild {THREADS_PER_CHILD}
ThreadLimit {THREADS_PER_CHILD}
MaxRequestWorkers {threads}
MinSpareThreads 1
MaxSpareThreads {threads}
MaxConnectionsPerChild 0

Timeout 30
KeepAlive On
KeepAliveTimeout 60
# unlimited, as the other balancers: Apache's default of 100 requests per connection would
# turn keep-alive traffic partly into new connections
MaxKeepAliveRequests 0

<Proxy balancer://bench>
{members}    ProxySet lbmethod=byrequests
    Require all granted
</Proxy>
ProxyPreserveHost On
ProxyPass / balancer://bench/
ProxyPassReverse / balancer://bench/
"""


def apache_variant() -> Variant:
    def command(workdir: Path, port: int, backends: list[int]) -> list[str]:
        home = workdir / "apache"
        home.mkdir(exist_ok=True)
        conf = home / "apache2.conf"
        conf.write_text(config(home, port, backends))
        return ["apache2", "-f", str(conf), "-DFOREGROUND"]

    return Variant("apache event", "http", "apache", SERVERS, command, environment)
