"""A TCP proxy on 127.0.0.1 that can be told to fail, for failure drills between real processes.

Put it between a client and a server (a process and PostgreSQL, Rasa and a fake provider API)
and switch its mode from the test thread:

- `up`: forwards both ways (optionally holding each chunk coming back for `delay` seconds: a
  slow server, whose request has arrived while the client still waits for the answer);
- `refuse`: nothing listens (connection refused) and every open connection is reset;
- `blackhole`: connections are accepted and never answered (a server that hangs);
- `http_503`: every HTTP request is answered `503 Service Unavailable` (a provider in trouble).

Switching away from `up` resets the open connections, so a pooled or keep-alive connection
cannot slip past the outage. The proxy runs its own event loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

MODES = ("up", "refuse", "blackhole", "http_503")
_BODY = b'{"error": "unavailable"}'
_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BODY), _BODY)
)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a dropped network path or a killed peer looks."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", delay: float = 0.0):
        self.target = (target_host, target_port)
        self.delay = delay
        self.mode = "up"
        self.port = 0
        self.accepted = 0  # connections accepted in any mode
        self.answered_503 = 0
        self._server: asyncio.AbstractServer | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # -- control, from any thread -------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        self._call(self._switch(mode))

    def down(self) -> None:
        """The server is unreachable: connections refused, open ones reset."""
        self.set_mode("refuse")

    def up(self) -> None:
        self.set_mode("up")

    def cut(self) -> None:
        """Reset every open connection and keep forwarding (a server restart, a failover)."""
        self._call(self._cut())

    @contextlib.contextmanager
    def outage(self, mode: str = "refuse") -> Iterator[None]:
        self.set_mode(mode)
        try:
            yield
        finally:
            self.up()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    # -- inside the proxy's loop --------------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _cut(self) -> None:
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()

    async def _switch(self, mode: str) -> None:
        previous, self.mode = self.mode, mode
        if mode != "up" or previous != "up":
            await self._cut()
        if mode == "refuse":
            await self._unlisten()
        else:
            await self._listen()

    async def _stop(self) -> None:
        await self._unlisten()
        await self._cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._open.add(writer)
        try:
            if self.mode == "up":
                await self._forward(reader, writer)
            elif self.mode == "http_503":
                await self._answer_503(reader, writer)
            else:  # blackhole: read and drop until reset
                while await reader.read(65536):
                    pass
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._open.discard(writer)
            writer.transport.abort()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self._open.add(upstream)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, hold: float):
            try:
                while data := await source.read(65536):
                    if hold:
                        await asyncio.sleep(hold)
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    sink.write_eof()

        try:
            await asyncio.gather(
                pump(reader, upstream, 0.0), pump(upstream_reader, writer, self.delay)
            )
        finally:
            self._open.discard(upstream)
            upstream.transport.abort()

    async def _answer_503(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
        if length:
            await reader.readexactly(length)
        self.answered_503 += 1
        writer.write(_503)
        await writer.drain()
        writer.close()


def wait_until(predicate: Any, timeout: float, what: str, step: float = 0.1) -> None:
    """Poll `predicate()` from a test thread; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


class LoopThread:
    """An event loop in a daemon thread, for fake APIs that must keep answering while the test
    itself blocks (on a subprocess, a sync HTTP call) or runs a loop of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


@contextlib.contextmanager
def pg_database(server_url: str, migrate: bool = True, prefix: str = "dvc_drill") -> Iterator[str]:
    """A throw-away database on the PostgreSQL server of `server_url` (migrated, or empty for
    Rasa's tracker store); dropped afterwards, whoever is still connected."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from bot.core.db import make_engine
    from bot.core.migrate import upgrade

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def via(url: str, proxy: FaultProxy) -> str:
    """The same database URL, through the proxy."""
    from sqlalchemy.engine import make_url

    return (
        make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    )
