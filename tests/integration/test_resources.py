"""Running out of file descriptors (issue 7 item 7): fulcrum's own EMFILE never counts
against a server, accepting pauses until descriptors are free and resumes at once, and
the shortage is logged, rate-limited. A fulcrum process with a lowered RLIMIT_NOFILE,
on both event loops."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from fulcrum.proxy.resources import LOG_INTERVAL
from tests.support import FULCRUM, free_port, wait_for, wait_until

NOFILE = 64  # the limit of the fulcrum process: 150 clients need about 300 descriptors


async def slow_backend(port: int) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(100)
        await asyncio.sleep(0.3)  # hold the connection so the clients pile up
        writer.write(b"ok:" + data)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", port, backlog=1024)


async def ask(port: int, i: int) -> str:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        writer.write(b"c%d" % i)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 15)
        writer.close()
        return "ok" if data == b"ok:c%d" % i else f"bad {data!r}"
    except (OSError, TimeoutError) as err:
        return type(err).__name__


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_out_of_descriptors_blames_no_server_and_service_resumes_at_once(tmp_path: Path, loop: str) -> None:
    port, backend_port = free_port(), free_port()
    config = tmp_path / "f.toml"
    config.write_text(f'control = {{ socket = "off" }}\n[services.s]\nlisten = ["127.0.0.1:{port}"]\npool = "p"\n'
                      f'[pools.p]\nservers = ["127.0.0.1:{backend_port}"]\nhealth = {{ kind = "none" }}\n')
    log = tmp_path / "log"

    async def serving() -> bool:
        return await ask(port, 0) == "ok"

    async def scenario() -> tuple[Counter[str], list[str]]:
        backend = await slow_backend(backend_port)
        env = {**os.environ, "FULCRUM_LOOP": "asyncio" if loop == "asyncio" else "auto"}
        with open(log, "wb") as out:
            proc = await asyncio.create_subprocess_exec(FULCRUM, "run", "-c", str(config), stdout=out, stderr=out,
                                                        preexec_fn=limit_descriptors, env=env)
        try:
            await wait_until(serving, timeout=30, step=0.1, what="fulcrum serving")
            burst = Counter(await asyncio.gather(*(ask(port, i) for i in range(150))))
            after = [await ask(port, i) for i in range(20)]  # one at a time: descriptors are free again
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
            backend.close()
        return burst, after

    burst, after = asyncio.run(scenario())
    text = log.read_text()
    assert after == ["ok"] * 20, text  # recovered at once: before the fix the server was blacklisted
    assert burst["ok"] > 0 and not burst["TimeoutError"], burst
    assert "is DOWN" not in text and "failed (too many open files)" not in text  # no server blamed
    assert "Traceback" not in text, text
    stamps = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
              for line in text.splitlines() if "out of resources while" in line]
    assert stamps, text  # logged ...
    assert all((b - a).total_seconds() >= LOG_INTERVAL for a, b in zip(stamps, stamps[1:], strict=False)), text  # ... rate-limited
    assert "accepting connections again" in text


def test_the_soft_descriptor_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "f.toml"
    config.write_text(f'control = {{ socket = "off" }}\n[services.s]\nlisten = ["127.0.0.1:{port}"]\npool = "p"\n'
                      '[pools.p]\nservers = ["127.0.0.1:9"]\nhealth = { kind = "none" }\n')

    def soft_64_hard_4096() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 4096))

    proc = subprocess.Popen([FULCRUM, "run", "-c", str(config)], preexec_fn=soft_64_hard_4096,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        limits = Path(f"/proc/{proc.pid}/limits")
        wait_for(lambda: "Max open files            4096                 4096" in limits.read_text(),
                 what="the soft limit raised to 4096")
    finally:
        proc.terminate()
        proc.wait(30)
