"""Any role that can connect may LISTEN on the relay's channel and NOTIFY on
it: a forged notification must never hide or delay a real change."""

import json
import select
import time

import psycopg2

from rtclient import WsClient, make_token, run

TYPE = "forgery"
QUERY = f'*[_type == "{TYPE}"]'
FUTURE_TXID = 1 << 62


def attacker(pg):
    """A LOGIN role with no privileges at all, LISTENing on the channel."""
    pg.sql("DO $$BEGIN CREATE ROLE mallory LOGIN; "
           "EXCEPTION WHEN duplicate_object THEN NULL; END$$")
    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user="mallory",
                            dbname="cellcms", connect_timeout=5)
    conn.autocommit = True
    conn.cursor().execute("LISTEN cellcms_rt")
    return conn


def next_payload(conn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn.poll()
        if conn.notifies:
            return json.loads(conn.notifies.pop(0).payload)
        select.select([conn], [], [], 0.2)
    raise AssertionError("the attacker saw no notification")


def forge(conn, template, positions):
    cur = conn.cursor()
    for pos in positions:
        fake = dict(template, position=pos, txid=FUTURE_TXID,
                    documentId=f"forged-{pos}")
        cur.execute("SELECT pg_notify('cellcms_rt', %s)", (json.dumps(fake),))


async def recv_real(c, want, timeout=20.0):
    """The documentIds of mutations until every id in want has arrived."""
    got = set()
    deadline = time.monotonic() + timeout
    while not want <= got:
        left = deadline - time.monotonic()
        assert left > 0, f"missing real changes: {sorted(want - got)}"
        m = await c.recv_json(left)
        if m["type"] == "mutation" and not m["documentId"].startswith(
                "forged-"):
            got.add(m["documentId"])
    return got


async def subscriber_and_template(relay, pg, mallory):
    """A subscriber that has seen one real change, and that change's
    payload as the attacker saw it."""
    sub = await WsClient.connect(relay.port, make_token("sub"))
    await sub.subscribe(QUERY)
    first = pg.insert(TYPE)
    template = next_payload(mallory)
    assert template["documentId"] == first
    await recv_real(sub, {first})
    return sub, template


def test_forged_notify_cannot_hide_real_changes(relay_factory, pg):
    relay = relay_factory()
    mallory = attacker(pg)

    async def body():
        sub, template = await subscriber_and_template(relay, pg, mallory)
        # the next 20 positions, claimed by a txid no snapshot will see
        forge(mallory, template,
              range(template["position"] + 1, template["position"] + 21))
        await sub.sync()
        real = {pg.insert(TYPE) for _ in range(20)}
        await recv_real(sub, real)
        # and they keep coming after the next advances
        time.sleep(2.5)
        later = {pg.insert(TYPE) for _ in range(3)}
        await recv_real(sub, later)
        await sub.close()
    try:
        run(body())
    finally:
        mallory.close()


def test_notify_flood_does_not_delay_real_changes(relay_factory, pg):
    """A flood of forged notifications must not fill the relay's set of
    unconfirmed events for good (it would stop reading notifications, and
    every real change would wait for the once-a-second catch-up)."""
    relay = relay_factory("--advance-interval-ms", "60000")
    mallory = attacker(pg)

    async def body():
        sub, template = await subscriber_and_template(relay, pg, mallory)
        base = template["position"] + 1_000_000
        cur = mallory.cursor()
        # many forged notifications in few round trips (of a type nobody
        # subscribes to: forged events are deliverable until they are
        # signed, and this test is about the real ones)
        for chunk in range(20):
            cur.execute(
                "SELECT pg_notify('cellcms_rt', json_build_object("
                "'documentId', 'forged-' || g, 'documentType', %s, "
                "'operation', 'update', 'dataset', 'production', "
                "'ts', %s, 'position', g, 'txid', %s)::text) "
                "FROM generate_series(%s, %s) g",
                ("elsewhere", template["ts"], FUTURE_TXID, base + chunk * 5000,
                 base + chunk * 5000 + 4999))
        # with the periodic catch-up an hour away, real changes arrive only
        # if the relay still reads its notifications
        real = {pg.insert(TYPE) for _ in range(5)}
        await recv_real(sub, real, timeout=30)
        await sub.close()
    try:
        run(body())
    finally:
        mallory.close()
