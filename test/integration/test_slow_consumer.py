"""SPEC §4: a client too slow to drain its queue is closed (4008), never
unbounded memory; the others keep being served."""

import asyncio

from rtclient import RawWs, WsClient, make_token, run, ws_path

ROWS = 20000
# The smallest queue bound the relay accepts is 64 KiB (--max-queue-bytes).
# A long query text makes every mutation to the slow client ~1 KiB, so
# ROWS of them (~20 MiB) cannot all hide in the kernel's socket buffers
# (loopback autotuning goes up to 4 MiB): the relay's own queue must
# overflow.  It uses only _id/_type, so no document has to be read.
SLOW_QUERY = '*[_type == "flood" && _id != "' + "z" * 900 + '"]'
AFTER_QUERY = '*[_type == "after-flood"]'


def flood(pg):
    pg.sql("INSERT INTO documents (type, data) SELECT 'flood', "
           "jsonb_build_object('n', g) FROM generate_series(1, %s) g",
           (ROWS,))


def open_slow_client(relay):
    """A client that subscribes to the flood, joins a document, and then
    reads nothing (4 KiB receive buffer)."""
    raw = RawWs(relay.port, ws_path(make_token("slow"), "production"),
                rcvbuf=4096, timeout=30)
    assert raw.recv_json()["type"] == "welcome"
    assert raw.recv_json()["type"] == "presence.snapshot"
    raw.send_json({"type": "subscribe", "query": SLOW_QUERY})
    assert raw.recv_json() == {"type": "subscribed", "query": SLOW_QUERY}
    raw.send_json({"type": "presence.join", "documentId": "slow-doc"})
    return raw


async def flood_until_dropped(relay, pg):
    """Observer `obs` sees the slow client join; ROWS changes commit in one
    transaction; the relay must drop the slow client, which obs sees as its
    presence.leave.  Returns obs."""
    obs = await WsClient.connect(relay.port, make_token("obs"))
    await obs.subscribe(AFTER_QUERY)
    raw = open_slow_client(relay)
    assert await obs.recv_json() == {
        "type": "presence.join", "documentId": "slow-doc", "userId": "slow",
        "userName": "slow"}
    await asyncio.get_running_loop().run_in_executor(None, flood, pg)
    try:
        m = await obs.recv_json(60)
    except AssertionError:
        raise AssertionError(
            f"the slow client was not dropped within 60 s of {ROWS} events "
            f"(relay RSS now {relay.rss_kb() // 1024} MiB)") from None
    assert m == {"type": "presence.leave", "documentId": "slow-doc",
                 "userId": "slow", "userName": "slow"}, m
    return obs, raw


def test_slow_consumer_dropped_relay_stays_healthy(relay_factory, pg):
    relay = relay_factory("--max-queue-bytes", "65536")

    async def body():
        rss0 = relay.rss_kb()
        obs, raw = await flood_until_dropped(relay, pg)
        growth_mb = (relay.rss_kb("VmHWM") - rss0) / 1024
        assert growth_mb < 64, f"relay peak RSS grew by {growth_mb:.0f} MiB"
        status, health = relay.healthz()
        assert status == 200 and health["database"] == "connected", health
        # the slow client was cut off: it cannot have got every event
        code, reason, n = raw.read_until_close(30)
        raw.close()
        assert n < ROWS, f"slow client got all {n} events: never dropped"
        # the relay still serves old and new clients
        late = await WsClient.connect(relay.port, make_token("late"))
        await late.subscribe(AFTER_QUERY)
        doc = pg.insert("after-flood")
        assert (await obs.recv_json())["documentId"] == doc
        assert (await late.recv_json())["documentId"] == doc
        await obs.expect_no_message(0.3)
        await obs.close()
        await late.close()
    run(body(), timeout=150)


def test_slow_consumer_closed_with_4008(relay_factory, pg):
    relay = relay_factory("--max-queue-bytes", "65536")

    async def body():
        obs, raw = await flood_until_dropped(relay, pg)
        code, reason, n = raw.read_until_close(30)
        raw.close()
        assert n < ROWS
        assert code == 4008, (f"slow client's connection ended with "
                              f"close code {code} (None = no close frame, "
                              f"TCP closed), reason {reason!r}, after {n} "
                              f"messages")
        await obs.close()
    run(body(), timeout=150)
