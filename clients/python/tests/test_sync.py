"""Integration tests of the blocking Client against the real server."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, List

import pytest

import beuss
from beuss import ops
from beuss import protocol as p
from beuss.models import SettleResult

from .conftest import Server


def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a server-side condition (a readiness check, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached within 10 s")
        time.sleep(0.005)


def qstat(c: beuss.Client, queue: str, name: str) -> int:
    return c.stats(queue).queues.get(queue, {}).get(name, 0)


def test_hello_and_ping(server: Server) -> None:
    with beuss.Client(server.address) as c:
        assert c.server.version == 6
        assert c.server.max_message_size == 1 << 20
        assert c.server.has(beuss.FEATURE_LEASES | beuss.FEATURE_FANOUT)
        c.ping()
        c.quit()
        assert not c.connected


def test_env_defaults(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BHOST", "127.0.0.1")
    monkeypatch.setenv("BPORT", str(server.port))
    assert beuss.default_address() == ("127.0.0.1", server.port)
    with beuss.connect() as c:
        c.ping()


def test_put_get_and_batches(server: Server) -> None:
    with beuss.Client(server.address) as c:
        r = c.put("jobs", b"hello")
        assert r.id and not r.truncated
        assert c.get("jobs") == [b"hello"]
        assert c.get("jobs") == []
        results = c.put_many("jobs", [b"m%d" % i for i in range(3000)])
        assert len(results) == 3000 and results[-1].id == results[0].id + 2999  # type: ignore[operator]
        got: List[bytes] = []
        while len(got) < 3000:
            batch = c.get("jobs", max=1000)
            assert batch
            got.extend(batch)
        assert got == [b"m%d" % i for i in range(3000)]
        c.put("jobs", b"")
        assert c.get("jobs") == [b""]


def test_waiting_get_answered_by_later_put(server: Server) -> None:
    with beuss.Client(server.address) as c, beuss.Client(server.address) as other:
        got: List[List[bytes]] = []
        t = threading.Thread(target=lambda: got.append(c.get("wait", wait=None, max=10)))
        t.start()
        until(lambda: other.stats("wait").server["waiters"] == 1)
        other.put("wait", b"late")
        t.join(10)
        assert got == [[b"late"]]


def test_wait_times_out_without_client_timeout(server: Server) -> None:
    # The socket timeout is wait + margin, so a short client timeout does not cut a
    # longer wait short.
    with beuss.Client(server.address, timeout=0.05) as c:
        assert c.get("nothing", wait=0.3) == []
        c.ping()


def test_truncation_warning(make_server: Callable[..., Server]) -> None:
    s = make_server(BMAXMESSAGESIZE="16")
    with beuss.Client(s.address) as c:
        assert c.server.max_message_size == 16
        r = c.put("t", b"x" * 40)
        assert r.truncated and (r.original_len, r.stored_len) == (40, 16) and r.id
        assert c.get("t") == [b"x" * 16]


def test_full_is_not_fatal(make_server: Callable[..., Server]) -> None:
    s = make_server(BMAXMEMORY="64K", BMAXMESSAGESIZE="4K")
    with beuss.Client(s.address) as c:
        with pytest.raises(beuss.Full) as info:
            for _ in range(1000):
                c.put("f", b"y" * 1000)
        assert not info.value.fatal and info.value.code == 7
        c.ping()  # the connection is still usable
        with pytest.raises(beuss.Full) as many:
            c.put_many("f", [b"z" * 1000] * 10)
        results = getattr(many.value, "results")
        assert len(results) == 10 and all(isinstance(r, beuss.Full) for r in results)
        assert c.purge("f") > 0
        c.put("f", b"ok")


def test_bad_queue_names(server: Server) -> None:
    with beuss.Client(server.address) as c:
        with pytest.raises(ValueError):
            c.put("", b"x")
        with pytest.raises(ValueError):
            c.get("q" * 256)
        assert c.put("é" * 127, b"x").id  # 254 bytes of UTF-8 is fine
        # A name that is not UTF-8 can only be sent by hand: the server's fatal error
        # maps to its class and closes the connection.
        frame = bytes((0, 0, 0, 4, p.PURGE, 0, 1, 0xFF))
        with pytest.raises(beuss.BadQueueName) as info:
            c._call(ops.Op(frame, ops.purge("x").decode))
        assert info.value.fatal and info.value.code == 3
        assert not c.connected
        with pytest.raises(beuss.ConnectionClosed):
            c.ping()
        c.reconnect()
        c.ping()


def test_bad_subject(server: Server) -> None:
    with beuss.Client(server.address) as c:
        with pytest.raises(beuss.BadSubject):
            c.publish("orders.*", b"x")
        assert not c.connected


def test_lease_ack_nack_touch(server: Server) -> None:
    with beuss.Client(server.address) as c:
        c.put("l", b"a")
        [m] = c.lease("l", lease=30)
        assert (m.body, m.attempt) == (b"a", 1)
        assert c.get("l") == []  # in flight, not ready
        assert m.touch()
        assert m.nack()
        assert not m.nack() and not m.ack()  # settled already: no-op, False
        [m2] = c.lease("l", max=10)
        assert (m2.id, m2.attempt) == (m.id, 2)
        assert c.ack("l", [m.pair]) == [SettleResult.STALE]
        assert m2.ack() and m2.result is SettleResult.OK
        assert c.ack("l", [m2.pair]) == [SettleResult.NOT_FOUND]
        assert qstat(c, "l", "acks") == 1


def test_stale_after_expiry_and_reconnect(server: Server) -> None:
    with beuss.Client(server.address) as c:
        c.put("s", b"a")
        [m] = c.lease("s", lease=0.05)
        until(lambda: c.stats().server["expired_leases"] == 1)
        assert not m.ack() and m.result is SettleResult.STALE
        [m2] = c.lease("s", lease=30)
        c.reconnect()  # the server gives the lease back when the connection closes
        assert not m2.ack() and m2.result is SettleResult.STALE
        [m3] = c.lease("s")
        assert m3.attempt == 3 and m3.ack()


def test_dead_letters(server: Server) -> None:
    with beuss.Client(server.address) as c:
        c.put("d", b"poison")
        [m] = c.lease("d", max_deliveries=1)
        assert m.nack()
        assert c.get("d") == []
        [dead] = c.peek("d.dead")
        assert dead.body == b"poison" and dead.id == m.id
        c.put("d", b"bad")
        [m] = c.lease("d")
        assert m.nack(dead=True)
        assert [e.body for e in c.peek("d.dead", max=10)] == [b"poison", b"bad"]
        assert c.move("d.dead", "d") == 2
        assert c.stats("d").queues["d"]["ready"] == 2


def test_delay_and_priority(server: Server) -> None:
    with beuss.Client(server.address) as c:
        c.put("p", b"low", priority=9)
        c.put("p", b"high", priority=0)
        c.put("p", b"mid")
        assert c.get("p", max=3) == [b"high", b"mid", b"low"]
        c.put("p", b"later", delay=0.2)
        assert c.get("p") == []
        assert c.stats("p").queues["p"]["delayed"] == 1
        assert c.get("p", wait=5) == [b"later"]


def test_peek_move_purge_stats(server: Server) -> None:
    with beuss.Client(server.address) as c:
        c.put_many("a", [b"1", b"2", b"3"])
        assert [e.body for e in c.peek("a", max=2)] == [b"1", b"2"]
        assert c.move("a", "b", max=2) == 2
        st = c.stats()
        assert st.queues["a"]["messages"] == 1 and st.queues["b"]["messages"] == 2
        assert st.server["messages"] == 3
        assert c.purge("b") == 2 and c.purge("nope") == 0
        assert c.stats("nope").queues == {}


def test_publish_bind_confirm(server: Server) -> None:
    with beuss.Client(server.address) as c, beuss.Client(server.address) as worker:
        assert c.bind("orders.*.created", "audit")
        assert not c.bind("orders.*.created", "audit")
        assert c.bind("orders.>", "all")
        pub = c.publish("orders.eu.created", b"hi")
        assert (pub.queues, pub.subscribers, pub.acked) == (2, 0, 0)
        assert c.publish("orders.eu.deleted", b"x").queues == 1
        [env] = worker.get_meta("audit")
        assert (env.body, env.subject) == (b"hi", "orders.eu.created")
        assert worker.get("all", max=5) == [b"hi", b"x"]
        with pytest.raises(beuss.TooFewCopies):
            c.publish("orders.eu.created", b"x", confirm=3, timeout=1)
        # Confirm: the reply waits until a worker takes the copy.
        done: List[Any] = []
        t = threading.Thread(target=lambda: done.append(c.publish("orders.us.created", b"c", confirm=1, timeout=10)))
        t.start()
        until(lambda: worker.stats().server["waiting"] == 1)
        [m] = worker.lease("audit")
        assert m.ack()
        t.join(10)
        assert done and done[0].acked == 1 and done[0].failed == 0
        assert c.unbind("orders.>", "all") and not c.unbind("orders.>", "all")


def test_subscribe_and_events(server: Server) -> None:
    with beuss.Client(server.address) as sub_conn, beuss.Client(server.address) as pub_conn:
        sub = sub_conn.subscribe("news.>")
        other = sub_conn.subscribe("news.sport")
        assert (sub.sid, other.sid) == (1, 2)
        for i in range(3):
            pub_conn.publish("news.sport", b"goal %d" % i)
        # Requests on the subscribed connection still get their replies; the events
        # that arrive meanwhile are set aside.
        sub_conn.ping()
        assert [sub.next(5).body for _ in range(3)] == [b"goal 0", b"goal 1", b"goal 2"]  # type: ignore[union-attr]
        ev = other.next(5)
        assert ev is not None and ev.subject == "news.sport" and ev.sid == 2
        assert sub.next(0.05) is None
        assert sub.unsubscribe()
        pub_conn.publish("news.x", b"nobody")
        assert sub.next(0.05) is None
        with pytest.raises(ValueError):
            sub_conn.subscribe("")


def test_request_reply(server: Server) -> None:
    with beuss.Client(server.address) as requester, beuss.Client(server.address) as responder:
        with pytest.raises(beuss.NoResponders) as info:
            requester.request("svc.none", b"?")
        assert not info.value.fatal
        sub = responder.subscribe("svc.*")

        def serve() -> None:
            ev = sub.next(10)
            assert ev is not None and ev.reply_to
            responder.reply(ev.reply_to, b"answer to " + ev.body)

        t = threading.Thread(target=serve)
        t.start()
        assert requester.request("svc.time", b"now?", timeout=10) == b"answer to now?"
        t.join(10)
        with pytest.raises(beuss.RequestTimeout):
            requester.request("svc.slow", b"?", timeout=0.05)
        requester.ping()  # a request timeout leaves the connection usable
        assert not requester.reply(12345, b"late")


def test_request_through_queue_with_meta(server: Server) -> None:
    with beuss.Client(server.address) as requester, beuss.Client(server.address) as worker:
        worker.bind("rpc.add", "rpc")
        result: List[bytes] = []
        t = threading.Thread(target=lambda: result.append(requester.request("rpc.add", b"1+1", timeout=10)))
        t.start()
        [m] = worker.lease("rpc", wait=10, meta=True)
        assert m.subject == "rpc.add" and m.reply_to
        assert m.reply(b"2") and m.ack()
        t.join(10)
        assert result == [b"2"]


def test_pipeline(server: Server) -> None:
    with beuss.Client(server.address) as c:
        with c.pipeline() as pipe:
            pipe.put("pl", b"a").put("pl", b"b").ping().get("pl", max=2).stats("pl").purge("pl")
        r = pipe.results
        assert r[0].id and r[1].id and r[2] is None and r[3] == [b"a", b"b"]
        assert r[4].queues["pl"]["puts"] == 2 and r[5] == 0
        pipe2 = c.pipeline().put("pl", b"x").lease("pl").get("pl")
        put, leased, got = pipe2.execute()
        assert leased[0].body == b"x" and got == [] and leased[0].ack()


def test_shutdown_answers_parked_get(server: Server) -> None:
    with beuss.Client(server.address) as c, beuss.Client(server.address) as watcher:
        errors: List[BaseException] = []

        def park() -> None:
            try:
                c.get("q", wait=None)
            except beuss.BeussError as err:
                errors.append(err)

        t = threading.Thread(target=park)
        t.start()
        until(lambda: watcher.stats().server["waiters"] == 1)
        server.terminate()
        t.join(10)
        assert len(errors) == 1 and isinstance(errors[0], beuss.ShuttingDown)


def test_consumer_acks_nacks_and_gives_back(server: Server) -> None:
    with beuss.Client(server.address) as c, beuss.Client(server.address) as admin:
        admin.put_many("work", [b"ok1", b"fail", b"ok2"])
        seen: List[bytes] = []
        consumer = c.consume("work", lease=30, prefetch=10, wait=0.05, backoff=lambda attempt: 0.0)

        def handler(m: beuss.Message) -> None:
            seen.append(m.body)
            if m.body == b"fail" and m.attempt == 1:
                raise RuntimeError("boom")
            if len(seen) == 4:
                consumer.stop()

        consumer.run(handler)
        consumer.close()
        assert sorted(seen) == [b"fail", b"fail", b"ok1", b"ok2"]
        st = admin.stats("work").queues["work"]
        assert st["acks"] == 3 and st["nacks"] == 1 and st["messages"] == 0

        # Shutdown gives back what was prefetched but not handled, without a charge:
        # with max_deliveries 1 a charged return would dead-letter them.
        admin.put_many("work", [b"a", b"b", b"c"])
        with c.consume("work", prefetch=10, max_deliveries=1) as jobs:
            first = next(iter(jobs))
            assert first.body == b"a"
        assert admin.stats("work").queues["work"]["ready"] == 3
        assert admin.peek("work.dead") == []

        # A body that raises: that message is nacked with backoff, the rest given back.
        with pytest.raises(KeyError):
            with c.consume("work", prefetch=10, backoff=lambda a: 0.0) as jobs:
                for m in jobs:
                    raise KeyError(m.body)
        st = admin.stats("work").queues["work"]
        assert st["ready"] == 3 and st["nacks"] >= 3


def test_consumer_touches_long_work(server: Server) -> None:
    with beuss.Client(server.address) as c, beuss.Client(server.address) as admin:
        admin.put("slow", b"job")
        with c.consume("slow", lease=0.4, wait=0.05) as jobs:
            for m in jobs:
                # Longer than the lease: only the auto-touch keeps it.
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    time.sleep(0.02)
                assert m.ack()
                break
        st = admin.stats()
        assert st.server["expired_leases"] == 0 and st.server["acks"] == 1


def test_client_timeout_closes_the_connection() -> None:
    # A peer that accepts and never answers: HELLO gets no reply.
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(beuss.ClientTimeout):
            beuss.Client(("127.0.0.1", port), timeout=0.1)


def test_too_many_connections_and_limit(make_server: Callable[..., Server]) -> None:
    s = make_server(BMAXCONNECTIONS="1")
    with beuss.Client(s.address) as c:
        with pytest.raises(beuss.TooManyConnections) as info:
            beuss.Client(s.address)
        assert info.value.fatal
        for _ in range(1024):
            c.subscribe("a.>")
        with pytest.raises(beuss.Limit) as limit:
            c.subscribe("a.>")
        assert not limit.value.fatal
        c.ping()


def test_pipeline_subscribe_and_request(server: Server) -> None:
    with beuss.Client(server.address) as c, beuss.Client(server.address) as other:
        sub, sub2, pub = c.pipeline().subscribe("p.*").subscribe("p.x").publish("p.x", b"e").execute()
        assert isinstance(sub, beuss.Subscription) and (sub.sid, sub2.sid) == (1, 2) and pub.subscribers == 2
        ev = sub.next(5)
        assert ev is not None and ev.body == b"e"
        with pytest.raises(beuss.NoResponders):
            other.pipeline().ping().request("nobody.home", b"?").execute()
        ping, err = other.pipeline().ping().request("nobody.home", b"?").execute(raise_on_error=False)
        assert ping is None and isinstance(err, beuss.NoResponders)


def test_event_buffer_is_bounded(server: Server) -> None:
    with beuss.Client(server.address) as c, beuss.Client(server.address) as pub:
        sub = c.subscribe("b")
        sub.max_buffered = 3
        pub.put_many("unused", [b""])  # nothing to do with the subscription
        for i in range(5):
            pub.publish("b", b"%d" % i)
        c.ping()  # reads every event the server sent before the PONG
        assert [sub.next(1).body for _ in range(3)] == [b"0", b"1", b"2"]  # type: ignore[union-attr]
        assert sub.dropped == 2 and sub.next(0.01) is None


def test_refused_connection_is_a_beuss_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(beuss.ConnectionClosed):
            beuss.Client(("127.0.0.1", port))

        async def main() -> None:
            with pytest.raises(beuss.ConnectionClosed):
                await beuss.connect_async(("127.0.0.1", port))

        import asyncio

        asyncio.run(main())


def test_consumer_stop_from_a_signal_handler(server: Server) -> None:
    import os
    import signal

    with beuss.Client(server.address) as c, beuss.Client(server.address) as admin:
        admin.put_many("sig", [b"%d" % i for i in range(5)])
        seen: List[bytes] = []
        with c.consume("sig", prefetch=10, wait=0.05) as jobs:
            old = signal.signal(signal.SIGUSR1, lambda *_: jobs.stop())
            try:
                for m in jobs:
                    seen.append(m.body)
                    os.kill(os.getpid(), signal.SIGUSR1)  # handled before the next bytecode
            finally:
                signal.signal(signal.SIGUSR1, old)
        assert seen == [b"0"]
        st = admin.stats("sig").queues["sig"]
        assert (st["acks"], st["ready"], st["in_flight"]) == (1, 4, 0)


def test_with_reconnect(server: Server) -> None:
    import socket

    with beuss.Client(server.address) as c, beuss.Client(server.address) as admin:
        c.put("rq", b"x")
        [m] = c.lease("rq")
        assert c._sock is not None
        c._sock.shutdown(socket.SHUT_RDWR)  # the connection breaks under the client
        # Without replay: reconnected, but the put is not run again.
        with pytest.raises(beuss.ConnectionClosed):
            beuss.with_reconnect(c, lambda cl: cl.put("rq", b"lost?"))
        assert c.connected
        assert not m.ack() and m.result is SettleResult.STALE  # never acks a newer delivery
        assert c._sock is not None
        c._sock.shutdown(socket.SHUT_RDWR)
        r = beuss.with_reconnect(c, lambda cl: cl.put("rq", b"again"), replay=True)
        assert r.id
        assert [b for b in admin.get("rq", max=10)] == [b"x", b"again"]

        async def main() -> None:
            async with beuss.AsyncClient(server.address) as ac:
                assert ac._transport is not None
                ac._transport.abort()
                got = await beuss.with_reconnect_async(ac, lambda a: a.put("rq", b"async"), replay=True)
                assert got.id

        import asyncio

        asyncio.run(main())
        assert admin.get("rq") == [b"async"]


def test_large_messages(make_server: Callable[..., Server]) -> None:
    s = make_server(BMAXMESSAGESIZE="8M")
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB
    with beuss.Client(s.address) as c:
        assert not c.put("big", big).truncated
        assert c.get("big") == [big]
        # A pipeline far larger than the socket buffers: written while replies are read.
        c.put_many("big", [big[: 1 << 20]] * 12)
        got = c.pipeline()
        for _ in range(12):
            got.get("big")
        assert all(r == [big[: 1 << 20]] for r in got.execute())

        async def main() -> None:
            async with beuss.AsyncClient(s.address) as ac:
                await ac.put_many("abig", [big] * 3)
                assert await ac.get("abig", max=3) == [big]  # over 1 MiB: one per reply
                assert await ac.get("abig", max=3) == [big]

        import asyncio

        asyncio.run(main())


def test_long_pipeline_of_big_replies_does_not_deadlock(make_server: Callable[..., Server]) -> None:
    s = make_server(BMAXMESSAGESIZE="1M")
    with beuss.Client(s.address) as c:
        body = b"r" * 200_000
        c.put_many("deep", [body] * 30)
        # 200,000 GETs (2.6 MB of requests) while 6 MB of replies come back.
        pipe = c.pipeline()
        for _ in range(200_000):
            pipe.get("deep")
        results = pipe.execute()
        assert sum(len(r) for r in results) == 30 and results[0] == [body]


def test_event_poll_with_zero_timeout(server: Server) -> None:
    with beuss.Client(server.address) as c, beuss.Client(server.address) as pub:
        sub = c.subscribe("z")
        assert sub.next(0) is None
        pub.publish("z", b"now")
        deadline = time.monotonic() + 10
        ev = None
        while ev is None and time.monotonic() < deadline:
            ev = sub.next(0)  # a poll: reads what has arrived, never blocks
        assert ev is not None and ev.body == b"now"

        async def main() -> None:
            async with beuss.AsyncClient(server.address) as ac:
                asub = await ac.subscribe("z")
                await pub_async(server.address)
                await ac.ping()  # the event came before the PONG
                got = await asub.next(0)
                assert got is not None and got.body == b"async"

        async def pub_async(address: str) -> None:
            async with beuss.AsyncClient(address) as p2:
                await p2.publish("z", b"async")

        import asyncio

        asyncio.run(main())
