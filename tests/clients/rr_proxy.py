#!/usr/bin/env python3
"""A round-robin TCP proxy for replicas.sh: a load balancer without sticky sessions.

usage: rr_proxy.py PORT_FILE BACKEND [BACKEND...]   (BACKEND is host:port)

Listens on 127.0.0.1 on a free port, written to PORT_FILE once listening.
Each new client connection goes to the next backend in turn; a backend that
refuses the connection is skipped (as a load balancer's health check would).
Logs one line per connection, and one each time a connection's client-to-
backend bytes pass another 16 MiB, so a test can tell which backend is in the
middle of a large upload: "conn 3 -> 127.0.0.1:4000 up 48 MiB".
"""

import asyncio
import itertools
import sys

MIB = 1 << 20
REPORT_EVERY = 16 * MIB


def log(line):
    print(line, flush=True)


async def pipe(reader, writer, on_bytes=None):
    """Copies reader to writer until EOF or an error, then closes writer."""
    try:
        while True:
            data = await reader.read(256 * 1024)
            if not data:
                break
            writer.write(data)
            await writer.drain()
            if on_bytes:
                on_bytes(len(data))
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass


class Proxy:
    def __init__(self, backends):
        self.backends = backends
        self.turn = itertools.cycle(range(len(backends)))
        self.ids = itertools.count(1)

    async def connect_next(self):
        """The next backend that accepts a connection, in round-robin order."""
        for _ in self.backends:
            host, port = self.backends[next(self.turn)].rsplit(":", 1)
            try:
                reader, writer = await asyncio.open_connection(host, int(port))
                return f"{host}:{port}", reader, writer
            except OSError:
                continue
        return None

    async def handle(self, client_reader, client_writer):
        conn = next(self.ids)
        picked = await self.connect_next()
        if picked is None:
            log(f"conn {conn}: no backend accepts connections")
            client_writer.close()
            return
        backend, backend_reader, backend_writer = picked
        log(f"conn {conn} -> {backend}")
        up = 0

        def count(n):
            nonlocal up
            before, up = up, up + n
            if before // REPORT_EVERY != up // REPORT_EVERY:
                log(f"conn {conn} -> {backend} up {up // MIB} MiB")

        await asyncio.gather(
            pipe(client_reader, backend_writer, count),
            pipe(backend_reader, client_writer),
        )
        log(f"conn {conn} -> {backend} closed after {up} bytes up")


async def main(port_file, backends):
    proxy = Proxy(backends)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with open(port_file, "w") as f:
        f.write(f"{port}\n")
    log(f"listening on 127.0.0.1:{port}, backends {' '.join(backends)}")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
