"""Failure paths: interrupted reads, cancelled awaits, broken peers, server restarts.

Some tests use a scripted fake peer (``FakePeer``) where the real server cannot be
made to misbehave; the rest use the real server.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from typing import Any, Callable, Coroutine, List

import pytest

import beuss
from beuss import ops
from beuss import protocol as p
from beuss.client import default_address, parse_address

from .conftest import Server

def hello_reply(version: int, features: int) -> bytes:
    """A HELLO reply announcing ``version`` and the ``features`` bits (the limits fixed)."""
    return struct.pack(">IBHIB", 1 + 2 + 4 + 1 + 18, p.S_HELLO, version, 1 << 20, 0) + struct.pack(
        ">IIIIH", features, 30000, 43200000, 2592000000, 20)


HELLO_V3 = hello_reply(3, 0x1F)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def read_frame(conn: socket.socket) -> bytes:
    """One request frame (length prefix included) from the client."""
    head = _read_exact(conn, 4)
    return head + _read_exact(conn, int.from_bytes(head, "big"))


def _read_exact(conn: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


class FakePeer:
    """A one-connection server running ``script(conn)`` in a thread."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.address = ("127.0.0.1", self.sock.getsockname()[1])
        self.accepted = threading.Event()
        self.finished = threading.Event()
        self._script = script
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.accepted.set()
        with conn:
            try:
                self._script(conn)
            except (EOFError, OSError):
                pass
            finally:
                self.finished.set()

    def close(self) -> None:
        self.sock.close()
        self._thread.join(10)

    def __enter__(self) -> "FakePeer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hello_then(reply: bytes) -> Callable[[socket.socket], None]:
    """Answer HELLO, then answer the next request with ``reply``, then wait for EOF."""

    def script(conn: socket.socket) -> None:
        read_frame(conn)
        conn.sendall(HELLO_V3)
        read_frame(conn)
        conn.sendall(reply)
        while conn.recv(65536):
            pass

    return script


def hello_then_pongs(hello: bytes, opcodes: List[int]) -> Callable[[socket.socket], None]:
    """Answer HELLO with ``hello``, then record every request's opcode in ``opcodes`` and
    answer each PING with a PONG (nothing else), until EOF."""

    def script(conn: socket.socket) -> None:
        read_frame(conn)
        conn.sendall(hello)
        while True:
            frame = read_frame(conn)
            opcodes.append(frame[4])
            if frame[4] == p.PING:
                conn.sendall(bytes.fromhex("0000000101"))  # PONG

    return script


# -- addresses ---------------------------------------------------------------------


def test_address_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_address("[::1]:6553") == ("::1", 6553)
    assert parse_address("[::1]") == ("::1", 6552)
    assert parse_address("::1") == ("::1", 6552)  # a bare IPv6 literal is a host
    assert parse_address("example.org:7") == ("example.org", 7)
    assert parse_address("example.org") == ("example.org", 6552)
    assert parse_address(("h", "8")) == ("h", 8)
    # BHOST/BPORT as the server and the CLI read them: trimmed, blank = unset, and an
    # IPv6 host with or without brackets.
    monkeypatch.setenv("BHOST", "[::1]")
    monkeypatch.setenv("BPORT", " 7000 ")
    assert default_address() == ("::1", 7000)
    monkeypatch.setenv("BHOST", " ::1 ")
    monkeypatch.setenv("BPORT", "  ")
    assert default_address() == ("::1", 6552)
    monkeypatch.setenv("BHOST", "   ")
    assert default_address() == ("localhost", 6552)


# -- the sync client ---------------------------------------------------------------


def test_sync_interrupted_read_closes_the_connection(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt (or any exception) after a request went out and before its
    reply was read must close the connection: else the next call reads that reply."""
    with beuss.Client(server.address) as c:
        c.put("ir", b"x")
        real = beuss.Client._recv_some
        calls: List[int] = []

        def interrupted(self: beuss.Client, sock: socket.socket) -> None:
            if not calls:
                calls.append(1)
                raise KeyboardInterrupt
            real(self, sock)

        monkeypatch.setattr(beuss.Client, "_recv_some", interrupted)
        with pytest.raises(KeyboardInterrupt):
            c.stats("ir")
        assert not c.connected
        with pytest.raises(beuss.ConnectionClosed):
            c.ping()
        c.reconnect()
        assert c.get("ir") == [b"x"]


def test_sync_fatal_error_behind_a_big_write_is_reported(server: Server) -> None:
    """The server answers a fatal error and closes while a long pipeline is still being
    written: the caller gets that error, not a bare ConnectionClosed (protocol.md 2.8)."""
    with beuss.Client(server.address) as c:
        big = b"z" * (8 << 20)
        for _ in range(5):
            c.reconnect()
            # GET max 0 (refused by the encoders, so built by hand): fatal BAD_ARGUMENT.
            bad = p._control(p.GET, p.name("fw") + struct.pack(">IH", 0, 0))
            pipe = c.pipeline()._add(ops.Op(bad, ops._decode_messages)).put("fw", big)
            with pytest.raises(beuss.BadArgument):
                pipe.execute()
            assert not c.connected


def test_sync_big_write_with_a_high_file_descriptor(server: Server) -> None:
    """A process with over 1024 open files: select() cannot watch such a socket, and a
    write over 64 KiB (which reads replies as it goes) must still work."""
    import os
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip("needs 1200 open files")
    pipes = [os.pipe() for _ in range(560)]
    try:
        with beuss.Client(server.address) as c:
            assert c._sock is not None and c._sock.fileno() > 1024
            assert len(c.put_many("hf", [b"y" * 1000] * 200)) == 200
            assert len(c.get("hf", max=1000)) == 200
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


def test_sync_close_from_another_thread_ends_a_parked_get(server: Server) -> None:
    """protocol.md 12: to give up a parked GET early, close the connection. close() from
    another thread must not wait for the lock the parked GET holds (for ever)."""
    with beuss.Client(server.address) as c, beuss.Client(server.address) as watcher:
        errors: List[BaseException] = []

        def park() -> None:
            try:
                c.get("cl", wait=None)
            except beuss.BeussError as err:
                errors.append(err)

        t = threading.Thread(target=park)
        t.start()
        deadline = time.monotonic() + 10
        while watcher.stats().server["waiters"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        closer = threading.Thread(target=c.close)
        closer.start()
        closer.join(10)
        t.join(10)
        assert not closer.is_alive() and not t.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], beuss.ConnectionClosed)
        assert not c.connected
        watcher.put("cl", b"kept")  # the cancelled GET took nothing
        assert watcher.get("cl") == [b"kept"]


def test_sync_protocol_error_closes_the_connection() -> None:
    peer = FakePeer(hello_then(bytes.fromhex("0000000101")))  # PONG to a PUT
    try:
        c = beuss.Client(peer.address, timeout=5)
        with pytest.raises(beuss.ProtocolError):
            c.put("q", b"x")
        assert not c.connected
    finally:
        peer.close()


def test_sync_consumer_reconnects_after_shutdown(make_server: Callable[..., Server]) -> None:
    """SIGTERM answers the consumer's parked LEASE with SHUTTING_DOWN; with reconnect on,
    the consumer reopens (once a server is back) instead of raising."""
    first = make_server()
    port = first.port
    with beuss.Client(first.address) as c:
        cons = c.consume("sd", wait=None, lease=30)
        got: List[bytes] = []
        errors: List[BaseException] = []

        def work() -> None:
            try:
                for m in cons:
                    got.append(m.body)
                    cons.stop()
            except BaseException as err:  # noqa: B902 - the test reports it
                errors.append(err)

        t = threading.Thread(target=work)
        t.start()
        with beuss.Client(first.address) as watcher:
            deadline = time.monotonic() + 10
            while watcher.stats().server["waiters"] != 1:
                assert time.monotonic() < deadline
                time.sleep(0.005)
        first.terminate()
        first.proc.wait(10)
        second = make_server(BPORT=str(port))
        with beuss.Client(second.address) as producer:
            producer.put("sd", b"after restart")
        t.join(30)
        assert not t.is_alive()
        assert errors == [] and got == [b"after restart"]


def test_with_reconnect_replays_after_shutting_down(make_server: Callable[..., Server]) -> None:
    """SHUTTING_DOWN says the request was not carried out and the connection is gone:
    with replay the helper reconnects and runs the operation again, like after a reset;
    without replay it reconnects and raises."""
    first = make_server()
    port = first.port
    c = beuss.Client(first.address, timeout=5)
    first.terminate()
    first.proc.wait(10)  # c's socket now holds the unprompted SHUTTING_DOWN
    second = make_server(BPORT=str(port))
    try:
        result = beuss.with_reconnect(c, lambda cl: cl.put("wr", b"once"), replay=True)
        assert result.id is not None
        with beuss.Client(second.address) as check:
            assert check.get("wr", max=10) == [b"once"]
        c.close()
        c = beuss.Client(second.address, timeout=5)
        second.terminate()
        second.proc.wait(10)
        make_server(BPORT=str(port))
        with pytest.raises(beuss.ShuttingDown):
            beuss.with_reconnect(c, lambda cl: cl.put("wr", b"not replayed"))
        assert c.connected  # reopened for the next operation
        assert c.get("wr") == []
    finally:
        c.close()


def test_settles_behind_a_parked_lease_end_it_early(server: Server) -> None:
    """protocol.md 13.7: once 256 KiB of settle replies wait behind a parked LEASE, the
    server answers it EMPTY so they can go out. Both clients take that EMPTY as the
    lease's own answer and every settle reply as its own, in order."""
    n = 40_000  # SETTLED with one result is 8 bytes on the wire: 320,000 bytes

    with beuss.Client(server.address, timeout=30) as c:
        pipe = c.pipeline().lease("pk", wait=None)
        for i in range(n):
            pipe.ack("pk", [(i + 1, 1)])
        results = pipe.execute()
        assert results[0] == []
        assert all(r == [beuss.SettleResult.NOT_FOUND] for r in results[1:]) and len(results) == n + 1
        c.ping()

    async def main() -> None:
        async with beuss.AsyncClient(server.address, timeout=30) as a:
            parked = asyncio.ensure_future(a.lease("pk", wait=None))
            await asyncio.sleep(0)  # the LEASE goes out first
            settles = [a.ack("pk", [(i + 1, 1)]) for i in range(n)]
            got = await asyncio.gather(*settles)
            assert await parked == []
            assert all(r == [beuss.SettleResult.NOT_FOUND] for r in got)
            assert await a.ping() is None

    run(main())


def test_sync_consumer_goes_on_when_the_ack_meets_a_shutdown(make_server: Callable[..., Server]) -> None:
    """The server stops while the loop body runs: the ack gets SHUTTING_DOWN. That is
    logged like a lost connection, and the consumer reconnects for the next message."""
    first = make_server()
    port = first.port
    servers = [first]
    with beuss.Client(first.address, timeout=5) as c:
        c.put("sf", b"x")
        seen: List[bytes] = []
        with c.consume("sf", wait=0.2) as cons:
            for m in cons:
                seen.append(m.body)
                if m.body == b"x":
                    first.terminate()
                    first.proc.wait(10)
                    servers.append(make_server(BPORT=str(port)))
                    with beuss.Client(servers[1].address) as producer:
                        producer.put("sf", b"y")
                else:
                    cons.stop()
        assert seen == [b"x", b"y"]


# -- the asyncio client --------------------------------------------------------------


def slow_put_replies(count: int, gap: float) -> Callable[[socket.socket], None]:
    """Answer HELLO, read ``count`` PUTs, then answer them ``gap`` seconds apart: a
    server that is slow but alive (this pacing is the peer's, not a synchronisation)."""

    def script(conn: socket.socket) -> None:
        read_frame(conn)
        conn.sendall(HELLO_V3)
        for _ in range(count):
            read_frame(conn)
        for _ in range(count):
            time.sleep(gap)
            conn.sendall(bytes.fromhex("000000091000000000000000") + b"\x01")
        while conn.recv(65536):
            pass

    return script


def test_reply_timeout_counts_from_the_last_progress() -> None:
    """The client timeout is "no progress for that long", as in the sync client: a
    put_many whose replies keep coming is not cut off by a deadline from its start."""
    peer = FakePeer(slow_put_replies(4, 0.4))
    try:
        with beuss.Client(peer.address, timeout=1.0) as c:
            assert [r.id for r in c.put_many("q", [b"a", b"b", b"c", b"d"])] == [1, 1, 1, 1]
    finally:
        peer.close()
    peer = FakePeer(slow_put_replies(4, 0.4))

    async def main() -> None:
        c = await beuss.connect_async(peer.address, timeout=1.0)
        assert [r.id for r in await c.put_many("q", [b"a", b"b", b"c", b"d"])] == [1, 1, 1, 1]
        c.close()

    try:
        run(main())
    finally:
        peer.close()


def test_async_protocol_error_closes_the_connection() -> None:
    async def main() -> None:
        for call in ("put", "put_many"):
            peer = FakePeer(hello_then(bytes.fromhex("0000000101")))  # PONG to a PUT
            try:
                c = await beuss.connect_async(peer.address, timeout=30)
                with pytest.raises(beuss.ProtocolError):
                    if call == "put":
                        await asyncio.wait_for(c.put("q", b"x"), 10)
                    else:
                        await asyncio.wait_for(c.put_many("q", [b"x", b"y"]), 10)
                assert not c.connected
                c.close()
            finally:
                peer.close()

    run(main())


def test_async_replies_split_at_every_byte() -> None:
    """Replies (and an EVENT between them) arriving one byte per read."""
    event = bytes.fromhex("0000000f3f00000001000301" "0161") + b"hello"

    def script(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        read_frame(conn)
        conn.sendall(HELLO_V3)
        read_frame(conn)  # SUB
        read_frame(conn)  # PUT
        read_frame(conn)  # PING
        out = bytes.fromhex("000000053300000001") + event + bytes.fromhex("00000011110000000a0000000400000000000000070000000101")
        for i in range(len(out)):
            conn.sendall(out[i : i + 1])
        while conn.recv(65536):
            pass

    peer = FakePeer(script)

    async def main() -> None:
        c = await beuss.connect_async(peer.address, timeout=30)
        sub_f = asyncio.ensure_future(c.subscribe("a"))
        put_f = asyncio.ensure_future(c.put("q", b"0123456789"))
        ping_f = asyncio.ensure_future(c.ping())
        sub = await sub_f
        result = await put_f
        assert result.truncated and result.stored_len == 4 and result.id == 7
        assert await ping_f is None
        ev = await sub.next(10)
        assert ev is not None and ev.body == b"hello" and ev.subject == "a"
        c.close()

    try:
        run(main())
    finally:
        peer.close()


def test_async_cancelled_get_keeps_replies_in_step(server: Server) -> None:
    """A cancelled await leaves its request in the FIFO: the reply that comes for it is
    dropped, and the replies after it still reach the right callers."""

    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c, beuss.AsyncClient(server.address) as other:
            parked = asyncio.ensure_future(c.get("cg", wait=None))
            behind = asyncio.ensure_future(c.stats("cg"))
            await asyncio.sleep(0)  # both requests are written
            parked.cancel()
            with pytest.raises(asyncio.CancelledError):
                await parked
            await other.put("cg", b"taken by the cancelled get")
            stats = await behind
            assert isinstance(stats, beuss.Stats)
            assert await c.ping() is None
            await c.put("cg", b"second")
            assert await c.get("cg") == [b"second"]

    run(main())


def test_async_cancelled_subscribe_leaves_no_subscription(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c:
            task = asyncio.ensure_future(c.subscribe("cs.>"))
            await asyncio.sleep(0)  # the SUB is written
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await c.ping()  # SUBSCRIBED came before PONG: the UNSUB is out
            await c.ping()  # ... and answered
            assert c._subs == {}
            assert (await c.stats()).server["subscriptions"] == 0

    run(main())


def test_async_cancelled_lease_gives_back_what_it_took(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c, beuss.AsyncClient(server.address) as other:
            task = asyncio.ensure_future(c.lease("cl", wait=None, lease=600))
            await asyncio.sleep(0)  # the LEASE is written
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await other.put("cl", b"back at once")  # handed to the cancelled lease
            await c.ping()  # LEASED came before PONG: the NACK is out
            [m] = await c.lease("cl")  # not after the 600 s lease
            assert m.body == b"back at once" and m.attempt == 2
            assert await m.ack()

    run(main())


def test_async_cancelled_connect_leaves_no_socket() -> None:
    hello = threading.Event()

    def script(conn: socket.socket) -> None:
        read_frame(conn)  # HELLO, never answered
        hello.set()
        while conn.recv(65536):
            pass

    peer = FakePeer(script)

    async def main() -> None:
        c = beuss.AsyncClient(peer.address, timeout=30)
        task = asyncio.ensure_future(c.connect())
        loop = asyncio.get_running_loop()
        # Cancel once connect() waits for the HELLO reply (the socket is open).
        assert await loop.run_in_executor(None, hello.wait, 10)
        assert c._transport is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not c.connected and c._transport is None
        # The peer sees the connection end.
        assert await loop.run_in_executor(None, peer.finished.wait, 10)

    try:
        run(main())
    finally:
        peer.close()


def test_async_connect_twice_opens_one_socket(server: Server) -> None:
    async def main() -> None:
        c = await beuss.connect_async(server.address)
        first = c._transport
        assert await c.connect() is c  # already open: nothing new
        assert c._transport is first
        assert (await c.stats()).server["connections_total"] == 1
        c.close()

    run(main())


def test_async_consumer_reconnects_after_shutdown(make_server: Callable[..., Server]) -> None:
    """SIGTERM answers the parked LEASE with SHUTTING_DOWN (a ServerError): the consumer
    must reconnect, not die with its feeder task and hang."""
    first = make_server()
    port = first.port

    async def main() -> None:
        async with beuss.AsyncClient(first.address) as c:
            got: List[bytes] = []
            done = asyncio.Event()

            async def handle(m: beuss.AsyncMessage) -> None:
                got.append(m.body)
                done.set()

            # A short wait: stop() waits for the parked LEASE to come back.
            cons = c.consume("asd", wait=0.2)
            task = asyncio.ensure_future(cons.run(handle))

            async def parked() -> bool:
                return (await c.stats()).server["waiters"] == 1

            deadline = time.monotonic() + 10
            while not await parked():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.005)
            first.terminate()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, first.proc.wait, 10)
            second = await loop.run_in_executor(None, lambda: make_server(BPORT=str(port)))
            async with beuss.AsyncClient(second.address) as producer:
                await producer.put("asd", b"after restart")
                await asyncio.wait_for(done.wait(), 20)
                cons.stop()
                await asyncio.wait_for(task, 20)
                assert got == [b"after restart"]
                assert (await producer.stats("asd")).queues["asd"]["acks"] == 1

    run(main())


def test_hello_negotiates_older_versions(server: Server) -> None:
    """Offering version 1 or 2 gets that version (min of both, protocol.md 9.1): a
    version-1 reply has no features, so put() sends the version-1 PUT (no id back);
    version 2 has the features and the lease limits."""
    with beuss.Client(server.address, version=1) as v1:
        assert v1.server.version == 1 and v1.server.features == 0 and v1.server.max_lease_ms == 0
        assert v1.server.max_message_size == 1 << 20
        assert v1.put("nv", b"a").id is None
        assert v1.get("nv") == [b"a"]
        # Newer requests are refused here, before a byte is sent (9.1, 9.2).
        for call in (lambda: v1.lease("nv"), lambda: v1.put("nv", b"x", priority=1),
                     lambda: v1.put_many("nv", [b"x"], delay=1), lambda: v1.subscribe("a"),
                     lambda: v1.pipeline().ping().publish("s", b"").execute()):
            with pytest.raises(beuss.Unsupported):
                call()
        assert v1.connected and v1.get("nv") == []
    with beuss.Client(server.address, version=2) as v2:
        assert v2.server.version == 2
        assert v2.server.has(beuss.FEATURE_LEASES | beuss.FEATURE_PUT_OPTIONS)
        assert v2.server.default_lease_ms == 30000 and v2.server.max_deliveries == 20
        assert v2.put("nv", b"b").id is not None
        [m] = v2.lease("nv")
        assert m.body == b"b" and m.ack()
        for call in (lambda: v2.lease("nv", meta=True), lambda: v2.get_meta("nv"),
                     lambda: v2.bind("a", "nv"), lambda: v2.request("s", b"")):
            with pytest.raises(beuss.Unsupported):
                call()
        assert v2.connected

    async def main() -> None:
        async with beuss.AsyncClient(server.address, version=1) as a1:
            assert a1.server.version == 1
            assert (await a1.put("nv", b"c")).id is None
            with pytest.raises(beuss.Unsupported):
                await a1.lease("nv")
            with pytest.raises(beuss.Unsupported):
                await a1.pipeline().publish("s", b"").execute()
            assert await a1.get("nv") == [b"c"]
        with pytest.raises(beuss.UnsupportedVersion):
            await beuss.AsyncClient(server.address, version=0).connect()

    run(main())
    with pytest.raises(beuss.UnsupportedVersion):
        beuss.Client(server.address, version=0)
