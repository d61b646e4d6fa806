"""The Python work of one proxied HTTP request, measured in process without sockets: the
client shell (proxy/http/server.py), the core and the server shell (upstream.py) of a real
`HttpService` (the bench's defaults: X-Forwarded-*, Location rewriting, a keep-alive pool),
driven with fake transports by the request wrk sends and the response nginx gives in
`make bench`.

An analysis aid, not part of `make bench` and not a test (it asserts the bytes, never a
time). It reports Python calls per request (cProfile) and, with `--time`, the best of
several timings. For a figure that does not move on a loaded machine, count instructions:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/hotpath.py --requests 0     # the fixed cost (imports, set-up)
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/hotpath.py --requests 2000  # ... plus 2000 requests

(the difference of the two "Collected" totals over 2000 is instructions per request), or
`--callgrind` which runs both and prints that figure."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"  # what wrk sends
REQUEST_CLOSE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n"
BODY = b"fulcrum bench backend\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 14:00:00 GMT\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n"
            b"Connection: keep-alive\r\n\r\n%s" % (len(BODY), BODY))


class FakeTransport:
    """What the shells call on a transport; writes are kept for the check."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    abort = close

    def is_closing(self) -> bool:
        return self.closing

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name in ("peername", "sockname") else default


async def service() -> Any:
    from fulcrum.balance.pool import PoolRuntime
    from fulcrum.config.load import load_dict
    from fulcrum.proxy.context import ConnectionCounter, ServiceContext
    from fulcrum.proxy.http.service import HttpService

    config = load_dict({"services": {"web": {"listen": ["127.0.0.1:8080"], "mode": "http", "pool": "p"}},
                        "pools": {"p": {"servers": ["127.0.0.1:9001", "127.0.0.1:9002"],
                                        "health": {"kind": "none"}}}})
    ctx = ServiceContext(name="web", config=config.services["web"], pool=PoolRuntime("p", config.pools["p"]),
                         timeouts=config.service_timeouts("web"), node_connections=ConnectionCounter(),
                         connections=ConnectionCounter())
    return HttpService(ctx)


class Driver:
    """One client connection and the server connections it opens, all on fake transports."""

    def __init__(self, svc: Any) -> None:
        from fulcrum.proxy.http.server import HttpConnection

        self.svc = svc
        self.upstreams: list[Any] = []
        loop = svc.ctx.loop

        async def create_connection(factory: Any, host: str, port: int, **_: Any) -> tuple[Any, Any]:
            protocol = factory()
            transport = FakeTransport((host, port))
            protocol.connection_made(transport)
            self.upstreams.append(protocol)
            return transport, protocol

        loop.create_connection = create_connection  # this driver's loop only
        self.conn = HttpConnection(svc)
        self.client = FakeTransport(("127.0.0.1", 50000))
        self.conn.connection_made(self.client)

    def upstream_for_last(self) -> Any:
        """The server connection that was last written to."""
        for up in self.upstreams:
            if up.side.core is not None:
                return up
        raise AssertionError("no server connection holds a request")


async def warm(driver: Driver, request: bytes) -> None:
    """The first requests open the server connections (one per backend, round robin)."""
    for _ in range(2):
        driver.conn.data_received(request)
        for _ in range(3):
            await asyncio.sleep(0)
        driver.upstream_for_last().data_received(RESPONSE)


def run_requests(driver: Driver, n: int, request: bytes) -> None:
    ups = driver.upstreams
    conn = driver.conn
    for i in range(n):
        conn.data_received(request)
        ups[i & 1].data_received(RESPONSE)


def run_connections(driver: Driver, n: int, request: bytes) -> None:
    """A new client connection per request (`Connection: close`), as wrk's close traffic:
    accepted, one request, answered, closed; the server connections are the pool's."""
    from fulcrum.proxy.http.server import HttpConnection

    svc = driver.svc
    ups = driver.upstreams
    client = driver.client
    for i in range(n):
        conn = HttpConnection(svc)
        conn.connection_made(client)
        conn.data_received(request)
        ups[i & 1].data_received(RESPONSE)
        conn.connection_lost(None)


def check(driver: Driver) -> None:
    out = b"".join(driver.client.written)
    expect = b"HTTP/1.1 200 OK\r\n"
    assert out.startswith(expect), out[:200]
    assert out.count(expect) == out.count(BODY), out[-400:]
    sent = b"".join(driver.upstreams[0].transport.written)
    assert sent.startswith(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Forwarded-For: 127.0.0.1\r\n"), sent[:300]
    driver.client.written.clear()
    for up in driver.upstreams:
        up.transport.written.clear()


def callgrind(requests: int, close: bool) -> None:
    """Instructions per request: two runs under callgrind, the difference over `requests`."""
    totals = []
    for n in (0, requests):
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
             sys.executable, __file__, "--requests", str(n), *(["--close"] if close else [])],
            capture_output=True, text=True, check=True)
        found = re.search(r"Collected : (\d+)", proc.stderr)
        assert found is not None, proc.stderr[-2000:]
        totals.append(int(found.group(1)))
    print(f"callgrind: {(totals[1] - totals[0]) / requests:,.0f} instructions per request "
          f"({requests} requests; {totals[0]:,} fixed)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="cProfile: calls per request, top functions")
    parser.add_argument("--time", action="store_true", help="best of 5 CPU times (process_time; moves on a loaded machine)")
    parser.add_argument("--callgrind", action="store_true", help="instructions per request (valgrind)")
    parser.add_argument("--close", action="store_true",
                        help="a new client connection per request (Connection: close)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    if args.callgrind:
        callgrind(args.requests or 2000, args.close)
        return 0

    from fulcrum.proxy.loop import loop_factory

    request = REQUEST_CLOSE if args.close else REQUEST

    def run(driver: Driver, n: int) -> None:
        (run_connections if args.close else run_requests)(driver, n, request)

    async def body() -> None:
        driver = Driver(await service())
        await warm(driver, REQUEST)
        check(driver)
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            run(driver, args.requests)
            prof.disable()
            check(driver)
            stats = pstats.Stats(prof)
            calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
            print(f"{calls / args.requests:.1f} Python-visible calls per request (cProfile, "
                  f"{args.requests} {'close' if args.close else 'keep-alive'} requests)")
            rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][1])  # type: ignore[attr-defined]
            for (filename, line, name), (_, nc, tt, _, _) in rows[:args.top]:
                where = f"{Path(filename).name}:{line}" if line else filename
                print(f"  {nc / args.requests:6.2f}  {name}  ({where})  tottime/req {1e6 * tt / args.requests:.2f} µs")
        elif args.time:
            best = float("inf")
            for _ in range(5):
                started = time.process_time()
                run(driver, args.requests)
                best = min(best, time.process_time() - started)
                check(driver)
            print(f"{1e6 * best / args.requests:.2f} µs per request (best of 5 x {args.requests})")
        else:
            run(driver, args.requests)
            if args.requests:
                check(driver)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(body())
    return 0


if __name__ == "__main__":
    sys.exit(main())
