"""One soak backend process: a TCP service and an HTTP/1.1 service, both naming themselves.

TCP: the client sends `REQ <id> <size>\\n`; the answer is `<name> <id> ` + size bytes, then
close. `RST <id>\\n` is answered with a reset (SO_LINGER 0): a server fault on purpose.
HTTP: `GET /<size>` answers `size` bytes (keep-alive); `GET /reset` resets the connection.
Usage: backend.py NAME TCP_PORT HTTP_PORT"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys

NAME = sys.argv[1]


def reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        line = (await asyncio.wait_for(reader.readline(), 30)).decode().split()
        if line[:1] == ["RST"]:
            reset(writer)
            return
        _, ident, size = line
        writer.write(f"{NAME} {ident} ".encode() + b"x" * int(size))
        await writer.drain()
    except (OSError, ValueError, TimeoutError):
        pass
    finally:
        writer.close()


async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            target = head.split(b" ", 2)[1].decode()
            if target == "/reset":
                reset(writer)
                return
            body = b"x" * int(target.lstrip("/") or 0)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Server: %s\r\n\r\n" % (len(body), NAME.encode())
                         + body)
            await writer.drain()
    except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main() -> None:
    servers = [await asyncio.start_server(tcp, "127.0.0.1", int(sys.argv[2]), reuse_address=True, backlog=1024),
               await asyncio.start_server(http, "127.0.0.1", int(sys.argv[3]), reuse_address=True, backlog=1024)]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


asyncio.run(main())
