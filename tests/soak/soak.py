"""The soak test (`make soak`): mixed TCP and HTTP traffic through one `fulcrum run` for
SOAK_MINUTES (default 10; SOAK_SECONDS overrides), with faults injected all along:

- a server killed (SIGKILL) and started again 2 s later, every ~7 s, in turn;
- resets: some requests ask their server to reset the connection (a faulty server);
- slow readers: clients reading 1 MB responses in small pieces with pauses;
- reloads: SIGHUP with a changed file (a server's weight toggled), every ~5 s.

Asserted at the end (exit status 1 and the reason otherwise):
- no lost request that should have succeeded: every request except those that asked for a
  reset, and those in flight within KILL_WINDOW of a server being killed, succeeded with the
  right answer. Reloads get no window: they must lose nothing;
- flat descriptors and memory: measured with the load paused (connections closed) after
  warm-up and at the end, fulcrum's open descriptors grew by at most FD_SLACK and its RSS
  by at most RSS_SLACK. Connections to the HTTP servers are counted apart (idle keep-alive
  connections the proxy keeps for reuse: their number follows the load, not the time): at
  most POOL_BOUND.

Everything is on loopback; every wait is bounded. Prints the figures."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from fulcrum.proxy.http.core.server import IDLE_PER_SERVER

HERE = Path(__file__).parent
FULCRUM = str(Path(sys.executable).with_name("fulcrum"))
BACKENDS = 3
KILL_WINDOW = 1.0  # seconds around a kill in which a request may fail (it was on that server)
FD_SLACK = 8
RSS_SLACK = 0.25  # growth allowed, as a fraction of the warm RSS (allocator noise), plus 8 MB
TCP_CLIENTS, HTTP_CLIENTS, SLOW_READERS = 12, 12, 3
# Connections to the HTTP servers left open when the load pauses: the proxy keeps idle ones
# for reuse, up to IDLE_PER_SERVER per server (an idle one is closed only when the pool is
# swept, on later traffic); a leak of server connections would pass this bound in a long run.
POOL_BOUND = IDLE_PER_SERVER * BACKENDS
QUIET = 6.0  # load paused this long before measuring: idle pooled connections last 4 s


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Record:
    kind: str
    start: float
    end: float
    ok: bool
    excused: bool = False  # asked for a reset
    detail: str = ""


@dataclass
class Soak:
    duration: float
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fulcrum-soak-")))
    records: list[Record] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)
    reloads: int = 0
    paused: bool = False

    def __post_init__(self) -> None:
        self.tcp_port, self.http_port = free_port(), free_port()
        self.ports = [(free_port(), free_port()) for _ in range(BACKENDS)]
        self.backends: list[subprocess.Popen[bytes] | None] = [None] * BACKENDS
        self.config = self.tmp / "fulcrum.toml"
        self.weight = 1

    # -- processes ---------------------------------------------------------------------

    def write_config(self) -> None:
        def servers(which: int) -> str:
            return ", ".join(f'{{ address = "127.0.0.1", port = {p[which]}, weight = {self.weight if i == 0 else 1} }}'
                             for i, p in enumerate(self.ports))
        # a killed server is skipped for 2 s (blacklist) and comes back after 2 good probes
        health = '{ kind = "tcp", interval = "500ms", timeout = "300ms", rise = 2, fall = 3 }\nblacklist = "2s"'
        self.config.write_text(
            f'control = {{ socket = "off" }}\nlog = {{ level = "warning" }}\n'
            f'[services.tcp]\nlisten = ["127.0.0.1:{self.tcp_port}"]\npool = "tcp"\n'
            f'[services.web]\nlisten = ["127.0.0.1:{self.http_port}"]\npool = "web"\nmode = "http"\n'
            f'[pools.tcp]\nservers = [{servers(0)}]\nhealth = {health}\n'
            f'[pools.web]\nservers = [{servers(1)}]\nhealth = {health}\n')

    def start_backend(self, i: int) -> None:
        proc = subprocess.Popen([sys.executable, str(HERE / "backend.py"), f"b{i}", *map(str, self.ports[i])],
                                stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        self.backends[i] = proc

    def start(self) -> None:
        for i in range(BACKENDS):
            self.start_backend(i)
        self.write_config()
        self.log = open(self.tmp / "fulcrum.log", "wb")  # noqa: SIM115 - closed in stop()
        self.fulcrum = subprocess.Popen([FULCRUM, "run", "-c", str(self.config)], stdout=self.log, stderr=self.log)

    def stop(self) -> None:
        for proc in [self.fulcrum, *self.backends]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.log.close()

    def usage(self) -> tuple[int, int, int]:
        """fulcrum's open descriptors other than idle pooled connections to the HTTP servers,
        those pooled connections, and its resident memory (bytes), from /proc."""
        pid = self.fulcrum.pid
        http_ports = {p[1] for p in self.ports}
        to_servers = set()  # inodes of sockets connected to a backend's HTTP port
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) in http_ports:
                    to_servers.add(fields[9])
        links = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass  # closed meanwhile
        pooled = sum(1 for link in links if link.startswith("socket:[") and link[8:-1] in to_servers)
        rss = next(int(line.split()[1]) * 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
        return len(links) - pooled, pooled, rss

    # -- clients -----------------------------------------------------------------------

    async def tcp_client(self, deadline: float) -> None:
        n = 0
        while time.monotonic() < deadline:
            if self.paused:
                await asyncio.sleep(0.05)
                continue
            n += 1
            reset = random.random() < 0.02
            size = random.choice((10, 1000, 20000))
            ident = f"{id(self)}-{n}"
            start, ok, detail = time.monotonic(), False, ""
            try:
                async with asyncio.timeout(10):
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.tcp_port)
                    writer.write(f"{'RST' if reset else 'REQ'} {ident} {size}\n".encode())
                    await writer.drain()
                    data = await reader.read(-1)
                    writer.close()
                words = data.split(b" ", 2)
                ok = len(words) == 3 and words[1] == ident.encode() and len(words[2]) == size
                detail = "" if ok else f"answer {data[:60]!r}"
            except (OSError, TimeoutError) as err:
                detail = repr(err)
            self.records.append(Record("tcp", start, time.monotonic(), ok, reset, detail))

    async def http_client(self, deadline: float, slow: bool = False) -> None:
        reader = writer = None
        while time.monotonic() < deadline:
            if self.paused:
                if writer is not None:
                    writer.close()
                    reader = writer = None
                await asyncio.sleep(0.05)
                continue
            reset = not slow and random.random() < 0.02
            size = 1_000_000 if slow else random.choice((0, 100, 5000, 100000))
            start, ok, detail = time.monotonic(), False, ""
            try:
                async with asyncio.timeout(30):
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", self.http_port)
                    assert reader is not None
                    writer.write(f"GET /{'reset' if reset else size} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
                    await writer.drain()
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = head.split(b" ", 2)[1]
                    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                      if line.lower().startswith(b"content-length:")))
                    got = 0
                    while got < length:
                        chunk = await reader.read(min(65536 if slow else 1 << 20, length - got))
                        if not chunk:
                            raise ConnectionError("closed mid-body")
                        got += len(chunk)
                        if slow:
                            await asyncio.sleep(0.01)
                    ok = status == b"200" and got == size
                    detail = "" if ok else f"status {status!r}, {got} of {size} bytes"
                    if b"connection: close" in head.lower():
                        writer.close()
                        reader = writer = None
            except (OSError, TimeoutError, ValueError, StopIteration, asyncio.IncompleteReadError) as err:
                detail = repr(err)
                if writer is not None:
                    writer.close()
                reader = writer = None
            self.records.append(Record("slow" if slow else "http", start, time.monotonic(), ok, reset, detail))
        if writer is not None:
            writer.close()

    # -- faults ------------------------------------------------------------------------

    async def faults(self, deadline: float) -> None:
        victim, next_kill, next_reload = 0, time.monotonic() + 3, time.monotonic() + 2
        while time.monotonic() < deadline - 3:
            now = time.monotonic()
            if now >= next_kill:
                proc = self.backends[victim]
                assert proc is not None
                self.kills.append(time.monotonic())
                proc.kill()
                proc.wait(5)
                await asyncio.sleep(2)
                await asyncio.get_running_loop().run_in_executor(None, self.start_backend, victim)
                victim, next_kill = (victim + 1) % BACKENDS, time.monotonic() + 5 + random.random() * 4
            if now >= next_reload:
                self.weight = 3 - self.weight
                self.write_config()
                self.fulcrum.send_signal(signal.SIGHUP)
                self.reloads += 1
                next_reload = now + 4 + random.random() * 2
            await asyncio.sleep(0.1)

    async def quiet_usage(self) -> tuple[int, int, int]:
        """Pause the load, let connections close, measure."""
        self.paused = True
        await asyncio.sleep(QUIET)
        usage = self.usage()
        self.paused = False
        return usage

    async def run(self) -> list[str]:
        await asyncio.sleep(1.5)  # fulcrum binds and starts
        warm_until = time.monotonic() + min(20.0, self.duration * 0.15)
        await asyncio.gather(*(self.tcp_client(warm_until) for _ in range(TCP_CLIENTS)),
                             *(self.http_client(warm_until) for _ in range(HTTP_CLIENTS)))
        warm = await self.quiet_usage()
        self.records.clear()
        deadline = time.monotonic() + self.duration
        await asyncio.gather(self.faults(deadline),
                             *(self.tcp_client(deadline) for _ in range(TCP_CLIENTS)),
                             *(self.http_client(deadline) for _ in range(HTTP_CLIENTS)),
                             *(self.http_client(deadline, slow=True) for _ in range(SLOW_READERS)))
        end = await self.quiet_usage()
        return self.verdict(warm, end)

    def verdict(self, warm: tuple[int, int, int], end: tuple[int, int, int]) -> list[str]:
        def near_kill(r: Record) -> bool:
            return any(r.start - KILL_WINDOW <= k <= r.end + KILL_WINDOW for k in self.kills)

        lost = [r for r in self.records if not r.ok and not r.excused and not near_kill(r)]
        by_kind = {k: sum(1 for r in self.records if r.kind == k) for k in ("tcp", "http", "slow")}
        print(f"soak: {len(self.records)} requests {by_kind}, {len(self.kills)} server kills, {self.reloads} reloads; "
              f"failed: {sum(not r.ok for r in self.records)} "
              f"(resets asked {sum(r.excused for r in self.records)}, "
              f"near a kill {sum(1 for r in self.records if not r.ok and not r.excused and near_kill(r))}, "
              f"lost {len(lost)})")
        print(f"soak: fulcrum descriptors {warm[0]} -> {end[0]} (and idle pooled server connections "
              f"{warm[1]} -> {end[1]}), RSS {warm[2] / 1e6:.1f} -> {end[2] / 1e6:.1f} MB")
        first = self.records[0].start if self.records else 0.0
        kills = ", ".join(f"+{k - first:.1f}s" for k in self.kills)
        problems = [f"lost {r.kind} request at +{r.start - first:.1f}s..+{r.end - first:.1f}s: {r.detail} "
                    f"(kills at {kills})" for r in lost[:10]]
        if end[0] > warm[0] + FD_SLACK:
            problems.append(f"descriptors grew from {warm[0]} to {end[0]}")
        if end[1] > POOL_BOUND:  # the pool keeps at most what the clients used at once
            problems.append(f"{end[1]} idle connections to servers kept, more than {POOL_BOUND}")
        if end[2] > warm[2] * (1 + RSS_SLACK) + 8e6:
            problems.append(f"memory grew from {warm[2] / 1e6:.1f} to {end[2] / 1e6:.1f} MB")
        if self.fulcrum.poll() is not None:
            problems.append(f"fulcrum exited with status {self.fulcrum.returncode}")
        if not by_kind["tcp"] or not by_kind["http"] or not by_kind["slow"]:
            problems.append(f"some traffic never ran: {by_kind}")
        return problems


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS") or float(os.environ.get("SOAK_MINUTES", "10")) * 60)
    soak = Soak(seconds)
    print(f"soak: {seconds:g}s of traffic with faults; files in {soak.tmp}")
    soak.start()
    try:
        problems = asyncio.run(asyncio.wait_for(soak.run(), seconds + 120))
    finally:
        soak.stop()
    for problem in problems:
        print(f"soak: FAIL: {problem}")
    if problems:
        print(f"soak: fulcrum's log: {soak.tmp / 'fulcrum.log'}")
        return 1
    print("soak: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
