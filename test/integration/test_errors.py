"""SPEC §4 errors: refused requests get an `error` message and the
connection stays open; limits; binary and oversized frames close."""

import json

import pytest

from rtclient import (OP_BINARY, OP_CONT, OP_TEXT, Closed, RawWs, WsClient,
                      make_token, run, ws_path)

POSTS = '*[_type == "post"]'


async def expect_error(c, code, query=None):
    m = await c.recv_json()
    assert m.get("type") == "error", m
    assert m.get("code") == code, m
    assert set(m) <= {"type", "code", "message", "query"}, m
    assert isinstance(m["message"], str) and m["message"], m
    if query is not None:
        assert m.get("query") == query, m
    return m


async def still_works(c):
    """The connection is open and serves requests."""
    q = '*[_type == "alive"]'
    await c.subscribe(q)
    await c.unsubscribe(q)


FRAMES = [
    ("invalid_json", "not json"),
    ("invalid_json", "{"),
    ("invalid_json", ""),
    ("invalid_json", '{"type":"subscribe","query":"*"} {}'),
    ("invalid_json", "[1,2]"),
    ("invalid_json", '"subscribe"'),
    ("unknown_type", '{"type":"bogus"}'),
    ("unknown_type", '{"type":"welcome"}'),
    ("unknown_type", '{"type":"mutation","documentId":"x"}'),
    ("missing_field", "{}"),
    ("missing_field", '{"query":"*[_type == \\"post\\"]"}'),
    ("missing_field", '{"type":"subscribe"}'),
    ("missing_field", '{"type":"unsubscribe"}'),
    ("missing_field", '{"type":"presence.join"}'),
    ("missing_field", '{"type":"presence.leave"}'),
    ("invalid_field", '{"type":1}'),
    ("invalid_field", '{"type":"subscribe","query":1}'),
    ("invalid_field", '{"type":"subscribe","query":["*"]}'),
    ("invalid_field", '{"type":"unsubscribe","query":null}'),
    ("invalid_field", '{"type":"presence.join","documentId":5}'),
    ("invalid_field", '{"type":"presence.leave","documentId":{}}'),
    ("invalid_field", '{"type":"subscribe","query":"*[_type == \\"post\\"]",'
                      '"params":[1]}'),
    ("invalid_field", '{"type":"subscribe","query":"*[_type == \\"post\\"]",'
                      '"dataset":5}'),
    ("limit_exceeded", '{"type":"presence.join","documentId":"%s"}'
                       % ("d" * 300)),
]


@pytest.mark.parametrize("code,frame", FRAMES,
                         ids=[f"{c}:{f[:30]}" for c, f in FRAMES])
def test_bad_request_error_and_connection_stays(relay, code, frame):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        await c.send_text(frame)
        await expect_error(c, code)
        await still_works(c)
        await c.close()
    run(body())


INVALID_QUERIES = [
    '*[_type == ',
    '*[_type == "post"]{title}',
    '*[_type == "post"] | order(_id)',
    '*[_type == "post"][0]',
    'count(*)',
    '*[_id == $id]',  # $id not bound
    '',
]


@pytest.mark.parametrize("query", INVALID_QUERIES)
def test_invalid_query(relay, pg, query):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        await c.send_json({"type": "subscribe", "query": query})
        await expect_error(c, "invalid_query", query=query)
        await still_works(c)
        # the refused query is not subscribed
        pg.insert("post")
        await c.expect_no_message(0.5)
        await c.close()
    run(body())


def test_params_bound_but_wrong_name_is_invalid_query(relay):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q = '*[_id == $id]'
        await c.send_json({"type": "subscribe", "query": q,
                           "params": {"other": "x"}})
        await expect_error(c, "invalid_query", query=q)
        await still_works(c)
        await c.close()
    run(body())


def test_invalid_utf8_text_frame(relay):
    """A text frame that is not UTF-8.  Accepted outcomes: an invalid_json
    error with the connection kept (SPEC: errors keep the connection), or
    close 1007 (RFC 6455 §8.1).  Nothing else: no crash, no silence."""
    raw = RawWs(relay.port, ws_path(make_token(), "production"))
    try:
        assert raw.recv_json()["type"] == "welcome"
        assert raw.recv_json()["type"] == "presence.snapshot"
        raw.send_text(b'{"type":"subscribe","query":"\xff\xfe"}')
        kind, data, reason = raw.recv_message(5)
        if kind == "close":
            assert data == 1007, (data, reason)
            print("relay closes invalid UTF-8 with 1007")
        else:
            m = json.loads(data)
            assert m["type"] == "error" and m["code"] == "invalid_json", m
            raw.send_json({"type": "subscribe", "query": POSTS})
            assert raw.recv_json() == {"type": "subscribed", "query": POSTS}
            print("relay answers invalid UTF-8 with invalid_json")
    finally:
        raw.close()


def test_subscription_limit(relay_factory):
    relay = relay_factory("--max-subscriptions", "2")

    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q1, q2, q3 = ('*[_type == "a"]', '*[_type == "b"]',
                      '*[_type == "c"]')
        await c.subscribe(q1)
        await c.subscribe(q2)
        await c.send_json({"type": "subscribe", "query": q3})
        await expect_error(c, "limit_exceeded", query=q3)
        # re-subscribing an existing query is not a new subscription
        await c.subscribe(q2, params={"x": 1})
        await c.unsubscribe(q1)
        await c.subscribe(q3)
        # the limit is per connection
        d = await WsClient.connect(relay.port, make_token())
        await d.subscribe(q1)
        await d.subscribe(q2)
        await c.close()
        await d.close()
    run(body())


def test_presence_document_limit(relay_factory):
    relay = relay_factory("--max-presence-documents", "2")

    async def body():
        c = await WsClient.connect(relay.port, make_token("c"))
        obs = await WsClient.connect(relay.port, make_token("obs"))
        for d in ("d1", "d2"):
            await c.send_json({"type": "presence.join", "documentId": d})
            assert (await obs.recv_json())["documentId"] == d
        await c.send_json({"type": "presence.join", "documentId": "d3"})
        await expect_error(c, "limit_exceeded")
        await obs.expect_no_message(0.5)
        # joining an already-joined document is fine
        await c.send_json({"type": "presence.join", "documentId": "d1"})
        await c.send_json({"type": "presence.leave", "documentId": "d2"})
        assert (await obs.recv_json())["type"] == "presence.leave"
        await c.send_json({"type": "presence.join", "documentId": "d3"})
        m = await obs.recv_json()
        assert (m["type"], m["documentId"]) == ("presence.join", "d3")
        await still_works(c)
        await c.close()
        await obs.close()
    run(body())


def test_query_size_limit(relay_factory):
    relay = relay_factory("--max-query-bytes", "64")

    async def body():
        c = await WsClient.connect(relay.port, make_token())
        ok = '*[_type == "' + "a" * 40 + '"]'  # 54 bytes
        long = '*[_type == "' + "a" * 60 + '"]'  # 74 bytes
        await c.subscribe(ok)
        await c.send_json({"type": "subscribe", "query": long})
        m = await expect_error(c, "limit_exceeded")
        assert m.get("query") in (None, long), m
        await still_works(c)
        await c.close()
    run(body())


def test_binary_frame_closes_1003(relay):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        await c.ws.send(b'{"type":"subscribe","query":"*"}')
        code, reason, msgs = await c.expect_close(5)
        assert code == 1003, (code, reason)
        assert msgs == []
    run(body())


def test_frame_over_limit_closes_1009(relay_factory):
    relay = relay_factory("--max-frame-bytes", "1024",
                          "--max-query-bytes", "512")

    async def body():
        c = await WsClient.connect(relay.port, make_token())
        # just under the limit: served
        pad = "p" * (1024 - 80)
        frame = json.dumps({"type": "unsubscribe", "query": POSTS,
                            "pad": pad})
        assert len(frame) <= 1024
        await c.send_text(frame)
        assert await c.recv_json() == {"type": "unsubscribed",
                                       "query": POSTS}
        await c.send_text(json.dumps({"type": "unsubscribe", "query": POSTS,
                                      "pad": "p" * 2000}))
        code, reason, msgs = await c.expect_close(5)
        assert code == 1009, (code, reason)
        assert msgs == []
    run(body())


def test_fragmented_message_over_limit_closes_1009(relay_factory):
    """The limit applies to the message, not to each fragment."""
    relay = relay_factory("--max-frame-bytes", "1024",
                          "--max-query-bytes", "512")
    raw = RawWs(relay.port, ws_path(make_token(), "production"))
    try:
        assert raw.recv_json()["type"] == "welcome"
        assert raw.recv_json()["type"] == "presence.snapshot"
        msg = json.dumps({"type": "unsubscribe", "query": POSTS,
                          "pad": "p" * 1500}).encode()
        parts = [msg[:600], msg[600:1200], msg[1200:]]
        try:
            raw.send_frame(OP_TEXT, parts[0], fin=False)
            raw.send_frame(OP_CONT, parts[1], fin=False)
            raw.send_frame(OP_CONT, parts[2], fin=True)
        except (BrokenPipeError, ConnectionResetError):
            pass
        kind, code, reason = raw.recv_message(5)
        assert (kind, code) == ("close", 1009), (kind, code, reason)
    finally:
        raw.close()


def test_fragmented_message_under_limit_served(relay):
    raw = RawWs(relay.port, ws_path(make_token(), "production"))
    try:
        assert raw.recv_json()["type"] == "welcome"
        assert raw.recv_json()["type"] == "presence.snapshot"
        msg = json.dumps({"type": "subscribe", "query": POSTS}).encode()
        raw.send_frame(OP_TEXT, msg[:10], fin=False)
        raw.send_frame(OP_CONT, msg[10:20], fin=False)
        raw.send_frame(OP_CONT, msg[20:], fin=True)
        assert raw.recv_json() == {"type": "subscribed", "query": POSTS}
    finally:
        raw.close()


def test_default_frame_limit_64k(relay):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        await c.send_text(json.dumps({"type": "unsubscribe", "query": POSTS,
                                      "pad": "p" * 60000}))
        assert await c.recv_json() == {"type": "unsubscribed",
                                       "query": POSTS}
        await c.send_text(json.dumps({"type": "unsubscribe", "query": POSTS,
                                      "pad": "p" * 70000}))
        code, reason, _ = await c.expect_close(5)
        assert code == 1009, (code, reason)
    run(body())


def test_binary_frame_raw_closes_1003(relay):
    raw = RawWs(relay.port, ws_path(make_token(), "production"))
    try:
        raw.recv_json()
        raw.recv_json()
        raw.send_frame(OP_BINARY, b"\x00\x01\x02")
        with pytest.raises(Closed) as e:
            raw.recv_json(5)
        assert e.value.code == 1003
    finally:
        raw.close()
