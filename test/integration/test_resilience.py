"""Delivery across database outages: WebSocket clients stay connected, and
every change committed while the relay was disconnected reaches them
exactly once, in commit order, after it reconnects."""

import asyncio
import re
import signal
import time

import psycopg2

from rtclient import WsClient, make_token, run

TYPE = "outage"
QUERY = f'*[_type == "{TYPE}"]'


async def wait_database(relay, state, timeout=20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = relay.healthz()
            if last[1].get("database") == state:
                return
        except Exception as e:  # noqa: BLE001 -- keep polling
            last = e
        await asyncio.sleep(0.05)
    raise AssertionError(f"/healthz never said database={state}: {last!r}")


async def recv_ids(c, n, timeout=20.0):
    out = []
    for _ in range(n):
        m = await c.recv_json(timeout)
        assert m["type"] == "mutation" and m["query"] == QUERY, m
        out.append(m["documentId"])
    return out


def insert_now(pg, n):
    """Insert n documents, one transaction each, retrying the connection
    while PostgreSQL finishes starting; returns their ids in commit order."""
    ids = []
    deadline = time.monotonic() + 20
    while len(ids) < n:
        try:
            ids.append(pg.insert(TYPE, {"i": len(ids)}))
        except psycopg2.OperationalError:  # server still starting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    return ids


def test_postgres_restart(relay_factory, pg):
    relay = relay_factory()

    async def body():
        loop = asyncio.get_running_loop()
        c = await WsClient.connect(relay.port, make_token("sub"))
        peer = await WsClient.connect(relay.port, make_token("peer"))
        await c.subscribe(QUERY)
        first = pg.insert(TYPE)
        assert await recv_ids(c, 1) == [first]

        await loop.run_in_executor(None, pg.stop, "fast")
        await wait_database(relay, "disconnected")
        # clients stay connected and served during the outage
        await c.roundtrip()
        await peer.send_json({"type": "presence.join", "documentId": "d"})
        m = await c.recv_json()
        assert (m["type"], m["userId"]) == ("presence.join", "peer"), m
        await c.subscribe('*[_type == "during-outage"]')

        # commit as soon as PostgreSQL accepts connections: before the relay
        # (backing off) is back
        await loop.run_in_executor(None, pg.start)
        missed = await loop.run_in_executor(None, insert_now, pg, 3)
        await wait_database(relay, "connected")
        last = pg.insert(TYPE)
        assert await recv_ids(c, 4) == missed + [last]
        await c.expect_no_message(2.5)  # no duplicate from the catch-up
        # the subscription made during the outage works
        d = pg.insert("during-outage")
        m = await c.recv_json()
        assert (m["documentId"], m["query"]) == (
            d, '*[_type == "during-outage"]'), m
        await c.close()
        await peer.close()
    run(body(), timeout=90)
    # the backoff stays within what the README documents: 100 ms to 10 s
    delays = [int(d) for d in re.findall(r"retrying in (\d+) ms", relay.log())]
    assert delays, "no retry was logged"
    assert all(100 <= d <= 10000 for d in delays), delays


def test_relay_backends_terminated(relay_factory, pg):
    relay = relay_factory()

    async def body():
        c = await WsClient.connect(relay.port, make_token("sub"))
        await c.subscribe(QUERY)
        first = pg.insert(TYPE)
        assert await recv_ids(c, 1) == [first]
        n = pg.sql("SELECT count(pg_terminate_backend(pid)) "
                   "FROM pg_stat_activity "
                   "WHERE application_name LIKE 'cellcms-relay%%'")[0][0]
        assert n >= 1, ("no backend with application_name cellcms-relay*: "
                        "the relay does not name its connections")
        missed = insert_now(pg, 5)
        assert await recv_ids(c, 5) == missed
        await wait_database(relay, "connected")
        last = pg.insert(TYPE)
        assert await recv_ids(c, 1) == [last]
        await c.expect_no_message(2.5)
        await c.close()
    run(body(), timeout=60)


def test_changes_committed_while_relay_locked_out(relay_factory, pg):
    """Deterministic catch-up: the relay's role may not log in while its
    backends are terminated and changes commit (with a content filter, so
    documents come from the change log); once it may log in again, every
    change arrives exactly once, in commit order."""
    relay = relay_factory(db_user="relay_it")

    async def body():
        q = f'*[_type == "{TYPE}" && n >= 0]'
        c = await WsClient.connect(relay.port, make_token("sub"))
        await c.subscribe(q)
        first = pg.insert(TYPE, {"n": 0})
        m = await c.recv_json()
        assert m["documentId"] == first, m
        pg.sql("ALTER ROLE relay_it NOLOGIN")
        try:
            n = pg.sql("SELECT count(pg_terminate_backend(pid)) "
                       "FROM pg_stat_activity WHERE usename = 'relay_it'")
            assert n[0][0] >= 1
            await wait_database(relay, "disconnected")
            missed = [pg.insert(TYPE, {"n": i}) for i in range(1, 6)]
            pg.insert(TYPE, {"n": -1})  # does not match
            pg.sql("DELETE FROM documents WHERE id = %s", (missed[0],))
            await asyncio.sleep(1.0)
            status, health = relay.healthz()
            assert health["database"] == "disconnected", health
            await c.expect_no_message(0.1)
        finally:
            pg.sql("ALTER ROLE relay_it LOGIN")
        await wait_database(relay, "connected", timeout=30)
        got = []
        for _ in range(6):
            m = await c.recv_json(10)
            assert m["type"] == "mutation" and m["query"] == q, m
            got.append((m["documentId"], m["operation"]))
        assert got == [(d, "create") for d in missed] + [
            (missed[0], "delete")]
        await c.expect_no_message(2.5)
        await c.close()
    run(body(), timeout=90)


def test_changes_committed_in_a_burst_during_outage(relay_factory, pg):
    """Many changes in one transaction while the relay is disconnected,
    with a content filter (the relay must read documents from the log)."""
    relay = relay_factory()

    async def body():
        loop = asyncio.get_running_loop()
        q = f'*[_type == "{TYPE}" && keep == true]'
        c = await WsClient.connect(relay.port, make_token("sub"))
        await c.subscribe(q)
        await loop.run_in_executor(None, pg.stop, "fast")
        await wait_database(relay, "disconnected")
        await loop.run_in_executor(None, pg.start)
        rows = None
        deadline = time.monotonic() + 20
        while rows is None:
            try:
                rows = pg.sql(
                    "INSERT INTO documents (type, data) SELECT %s, "
                    "jsonb_build_object('keep', g %% 2 = 0, 'g', g) "
                    "FROM generate_series(1, 200) g "
                    "RETURNING id::text, (data->>'keep')::boolean", (TYPE,))
            except psycopg2.OperationalError:  # server still starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        want = [r[0] for r in rows if r[1]]
        got = []
        for _ in want:
            m = await c.recv_json(20)
            assert m["type"] == "mutation" and m["query"] == q, m
            got.append(m["documentId"])
        assert got == want
        await c.expect_no_message(2.5)
        await c.close()
    run(body(), timeout=90)


def test_relay_started_before_database(relay_factory, pg):
    async def body():
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, pg.stop, "fast")
        try:
            relay = relay_factory(wait=False)
            relay.wait_healthy("disconnected")
            c = await WsClient.connect(relay.port, make_token("early"))
            await c.subscribe(QUERY)
        finally:
            await loop.run_in_executor(None, pg.start)
        await wait_database(relay, "connected")
        doc = pg.insert(TYPE)
        assert await recv_ids(c, 1) == [doc]
        await c.close()
    run(body(), timeout=60)


def test_relay_stall_drops_nobody(relay_factory, pg):
    """A relay stopped longer than ping interval + timeout (SIGSTOP, as a
    long pause or a slow disk would) must not drop connections that were
    never pinged and left unanswered: the stall is the relay's, not the
    clients'.  Subscribers and quiet peers stay and miss nothing."""
    relay = relay_factory("--ping-interval", "2", "--ping-timeout", "2")

    async def body():
        sub = await WsClient.connect(relay.port, make_token("sub"))
        quiet = await WsClient.connect(relay.port, make_token("quiet"))
        await sub.subscribe(QUERY)
        first = pg.insert(TYPE)
        assert await recv_ids(sub, 1) == [first]

        relay.signal(signal.SIGSTOP)
        try:
            during = [pg.insert(TYPE) for _ in range(5)]
            await asyncio.sleep(7)  # well past interval + timeout
        finally:
            relay.signal(signal.SIGCONT)
        assert await recv_ids(sub, 5) == during
        # past another full interval + timeout: both answer pings, so stay
        await asyncio.sleep(5)
        await sub.roundtrip()
        await quiet.roundtrip()
        after = pg.insert(TYPE)
        assert await recv_ids(sub, 1) == [after]
        await sub.close()
        await quiet.close()
    run(body())
