"""SPEC §4 subscriptions: subscribe/unsubscribe, mutation delivery, GROQ
filters on the document as the filter sees it, dataset isolation."""

import datetime

from rtclient import TS_RE, WsClient, make_token, run

POSTS = '*[_type == "post"]'


def changelog_ts(pg, doc_id):
    """The ts strings of the change log rows of a document, in order: the
    value a mutation's ts must carry."""
    return [r[0] for r in pg.sql(
        "SELECT to_char(ts AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM cellcms_rt.changes "
        "WHERE document_id = %s ORDER BY position", (doc_id,))]


def check_mutation(m, doc, type_, op, query):
    assert set(m) == {"type", "documentId", "documentType", "operation",
                      "ts", "query"}, m
    assert (m["type"], m["documentId"], m["documentType"], m["operation"],
            m["query"]) == ("mutation", doc, type_, op, query), m
    assert TS_RE.match(m["ts"]), m["ts"]
    ts = datetime.datetime.strptime(m["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    now = datetime.datetime.utcnow()
    assert abs((now - ts).total_seconds()) < 30, (m["ts"], now)


def test_subscribe_and_unsubscribe_replies(relay):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        await c.send_json({"type": "subscribe", "query": POSTS})
        assert await c.recv_json() == {"type": "subscribed", "query": POSTS}
        await c.send_json({"type": "subscribe", "query": POSTS})
        assert await c.recv_json() == {"type": "subscribed", "query": POSTS}
        await c.send_json({"type": "unsubscribe", "query": POSTS})
        assert await c.recv_json() == {"type": "unsubscribed",
                                       "query": POSTS}
        never = '*[_type == "never"]'
        await c.send_json({"type": "unsubscribe", "query": never})
        assert await c.recv_json() == {"type": "unsubscribed",
                                       "query": never}
        await c.expect_no_message(0.3)
        await c.close()
    run(body())


def test_every_operation_delivered_with_log_ts(relay, pg):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q = '*[_type == "optest"]'
        await c.subscribe(q)
        doc = pg.insert("optest", {"title": "a"})
        pg.sql("UPDATE documents SET data = '{\"title\":\"b\"}' "
               "WHERE id = %s", (doc,))
        pg.sql("UPDATE documents SET published_at = now() WHERE id = %s",
               (doc,))
        pg.sql("UPDATE documents SET published_at = NULL WHERE id = %s",
               (doc,))
        pg.sql("DELETE FROM documents WHERE id = %s", (doc,))
        got = [await c.recv_json() for _ in range(5)]
        ops = ["create", "update", "publish", "unpublish", "delete"]
        for m, op in zip(got, ops):
            check_mutation(m, doc, "optest", op, q)
        assert [m["ts"] for m in got] == changelog_ts(pg, doc)
        await c.expect_no_message(0.5)
        await c.close()
    run(body())


def test_no_event_for_noop_update_or_rollback(relay, pg):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q = '*[_type == "quiet"]'
        await c.subscribe(q)
        doc = pg.insert("quiet", {"a": 1})
        check_mutation(await c.recv_json(), doc, "quiet", "create", q)
        pg.sql("UPDATE documents SET data = data WHERE id = %s", (doc,))
        conn = pg.connect()
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("INSERT INTO documents (type) VALUES ('quiet')")
            cur.execute("UPDATE documents SET data = '{\"a\":2}' "
                        "WHERE id = %s", (doc,))
        conn.rollback()
        conn.close()
        await c.expect_no_message(1.0)
        await c.close()
    run(body())


def test_events_in_commit_order(relay, pg):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q = '*[_type == "ordered"]'
        await c.subscribe(q)
        ids = [pg.insert("ordered", {"n": i}) for i in range(30)]
        got = [(await c.recv_json())["documentId"] for _ in ids]
        assert got == ids
        # one transaction, several changes: in statement order
        rows = pg.sql("INSERT INTO documents (type, data) SELECT 'ordered', "
                      "jsonb_build_object('n', g) FROM generate_series(1, 5) "
                      "g RETURNING id::text")
        got = [(await c.recv_json())["documentId"] for _ in rows]
        assert got == [r[0] for r in rows]
        await c.expect_no_message(0.3)
        await c.close()
    run(body())


def test_one_mutation_per_matching_subscription(relay, pg):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q1 = '*[_type == "multi"]'
        q2 = '*[_type == "multi" && title == "x"]'
        q3 = '*[_type == "other-multi"]'
        for q in (q1, q2, q3):
            await c.subscribe(q)
        doc = pg.insert("multi", {"title": "x"})
        got = [await c.recv_json(), await c.recv_json()]
        assert sorted(m["query"] for m in got) == sorted([q1, q2])
        for m in got:
            check_mutation(m, doc, "multi", "create", m["query"])
        await c.expect_no_message(0.5)
        doc2 = pg.insert("multi", {"title": "y"})
        check_mutation(await c.recv_json(), doc2, "multi", "create", q1)
        await c.expect_no_message(0.5)
        await c.close()
    run(body())


def test_every_subscribed_connection_gets_it(relay, pg):
    async def body():
        q = '*[_type == "bcast"]'
        cs = [await WsClient.connect(relay.port, make_token(f"u{i}"))
              for i in range(3)]
        for c in cs[:2]:
            await c.subscribe(q)
        doc = pg.insert("bcast")
        for c in cs[:2]:
            check_mutation(await c.recv_json(), doc, "bcast", "create", q)
        await cs[2].expect_no_message(0.5)
        for c in cs:
            await c.close()
    run(body())


def test_unsubscribe_stops_mutations(relay, pg):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q = '*[_type == "unsub"]'
        await c.subscribe(q)
        doc = pg.insert("unsub")
        check_mutation(await c.recv_json(), doc, "unsub", "create", q)
        await c.unsubscribe(q)
        pg.insert("unsub")
        await c.expect_no_message(1.0)
        await c.close()
    run(body())


def test_filter_on_content_with_params(relay, pg):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q = '*[_type == "post" && slug.current == $slug]'
        await c.subscribe(q, params={"slug": "hello"})
        pg.insert("post", {"slug": {"current": "other"}})
        pg.insert("page", {"slug": {"current": "hello"}})
        doc = pg.insert("post", {"slug": {"current": "hello"},
                                 "title": "Hi"})
        check_mutation(await c.recv_json(), doc, "post", "create", q)
        await c.expect_no_message(0.5)
        await c.close()
    run(body())


def test_resubscribe_replaces_params(relay, pg):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q = '*[_type == "post" && slug.current == $slug]'
        await c.subscribe(q, params={"slug": "a"})
        await c.subscribe(q, params={"slug": "b"})
        pg.insert("post", {"slug": {"current": "a"}})
        doc = pg.insert("post", {"slug": {"current": "b"}})
        m = await c.recv_json()
        check_mutation(m, doc, "post", "create", q)
        await c.expect_no_message(0.5)
        await c.close()
    run(body())


def test_same_query_different_params_on_two_connections(relay, pg):
    async def body():
        q = '*[_type == "post" && slug.current == $slug]'
        a = await WsClient.connect(relay.port, make_token("a"))
        b = await WsClient.connect(relay.port, make_token("b"))
        await a.subscribe(q, params={"slug": "for-a"})
        await b.subscribe(q, params={"slug": "for-b"})
        da = pg.insert("post", {"slug": {"current": "for-a"}})
        db = pg.insert("post", {"slug": {"current": "for-b"}})
        check_mutation(await a.recv_json(), da, "post", "create", q)
        check_mutation(await b.recv_json(), db, "post", "create", q)
        await a.expect_no_message(0.5)
        await b.expect_no_message(0.1)
        await a.close()
        await b.close()
    run(body())


def test_delete_matched_on_last_state(relay, pg):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q = '*[_type == "post" && slug.current == "doomed"]'
        doc = pg.insert("post", {"slug": {"current": "doomed"}})
        other = pg.insert("post", {"slug": {"current": "kept"}})
        await c.subscribe(q)
        pg.sql("DELETE FROM documents WHERE id = %s", (other,))
        pg.sql("DELETE FROM documents WHERE id = %s", (doc,))
        check_mutation(await c.recv_json(), doc, "post", "delete", q)
        await c.expect_no_message(0.5)
        await c.close()
    run(body())


def test_update_into_filter_delivered(relay, pg):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q = '*[_type == "post" && status == "ready"]'
        doc = pg.insert("post", {"status": "draft"})
        await c.subscribe(q)
        pg.sql("UPDATE documents SET data = '{\"status\":\"ready\"}' "
               "WHERE id = %s", (doc,))
        check_mutation(await c.recv_json(), doc, "post", "update", q)
        await c.expect_no_message(0.5)
        await c.close()
    run(body())


def test_id_filter(relay, pg):
    async def body():
        target = pg.insert("thing")
        other = pg.insert("thing")
        c = await WsClient.connect(relay.port, make_token())
        q = '*[_id == $id]'
        await c.subscribe(q, params={"id": target})
        pg.sql("UPDATE documents SET data = '{\"v\":1}' WHERE id = %s",
               (other,))
        pg.sql("UPDATE documents SET data = '{\"v\":1}' WHERE id = %s",
               (target,))
        check_mutation(await c.recv_json(), target, "thing", "update", q)
        await c.expect_no_message(0.5)
        await c.close()
    run(body())


def test_filter_sees_published_at_and_top_level_data(relay, pg):
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q1 = '*[_type == "news" && defined(published_at)]'
        q2 = '*[title == "Top level"]'
        await c.subscribe(q1)
        await c.subscribe(q2)
        doc = pg.insert("news", {"title": "nope"})
        await c.expect_no_message(0.5)
        pg.sql("UPDATE documents SET published_at = now() WHERE id = %s",
               (doc,))
        check_mutation(await c.recv_json(), doc, "news", "publish", q1)
        await c.expect_no_message(0.3)
        doc2 = pg.insert("misc", {"title": "Top level"})
        check_mutation(await c.recv_json(), doc2, "misc", "create", q2)
        # `data` itself is not a field of the document as GROQ sees it
        await c.close()
    run(body())


def test_large_document_content_filter(relay, pg):
    """A document far larger than a NOTIFY payload is still matched on its
    content (the relay reads it from the change log)."""
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q = '*[_type == "big" && marker == "needle"]'
        await c.subscribe(q)
        big = "x" * 200000
        pg.insert("big", {"body": big, "marker": "hay"})
        doc = pg.insert("big", {"body": big, "marker": "needle"})
        check_mutation(await c.recv_json(), doc, "big", "create", q)
        await c.expect_no_message(0.5)
        await c.close()
    run(body())


def test_long_document_id_and_type(relay, pg):
    """A type longer than fits a NOTIFY payload is delivered whole."""
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        t = "t" * 9000
        q = '*[marker == "longtype"]'
        await c.subscribe(q)
        doc = pg.insert(t, {"marker": "longtype"})
        check_mutation(await c.recv_json(), doc, t, "create", q)
        await c.close()
    run(body())


def test_subscription_dataset_isolation(relay, pg):
    async def body():
        q = '*[_type == "iso"]'
        prod = await WsClient.connect(relay.port, make_token("p"),
                                      "production")
        stag = await WsClient.connect(relay.port, make_token("s"), "staging")
        await prod.subscribe(q)
        await stag.subscribe(q, dataset="staging")
        dp = pg.insert("iso", dataset="production")
        ds = pg.insert("iso", dataset="staging")
        pg.insert("iso", dataset="other")
        check_mutation(await prod.recv_json(), dp, "iso", "create", q)
        check_mutation(await stag.recv_json(), ds, "iso", "create", q)
        await prod.expect_no_message(0.5)
        await stag.expect_no_message(0.1)
        await prod.close()
        await stag.close()
    run(body())


def test_dataset_mismatch_refused(relay, pg):
    async def body():
        q = '*[_type == "iso2"]'
        c = await WsClient.connect(relay.port, make_token(), "staging")
        await c.send_json({"type": "subscribe", "query": q,
                           "dataset": "production"})
        m = await c.recv_json()
        assert m["type"] == "error" and m["code"] == "dataset_mismatch", m
        assert m.get("query") == q, m
        assert isinstance(m["message"], str) and m["message"]
        pg.insert("iso2", dataset="production")
        pg.insert("iso2", dataset="staging")
        await c.expect_no_message(1.0)  # nothing was subscribed
        await c.subscribe(q)
        ds = pg.insert("iso2", dataset="staging")
        check_mutation(await c.recv_json(), ds, "iso2", "create", q)
        await c.close()
    run(body())


def test_mutation_query_text_is_echoed_exactly(relay, pg):
    """The query of a mutation is the client's text byte for byte
    (whitespace, unicode), the key the client routes it by."""
    async def body():
        c = await WsClient.connect(relay.port, make_token())
        q = '*[ _type  ==  "échantillon" ]  '
        await c.subscribe(q)
        doc = pg.insert("échantillon")
        check_mutation(await c.recv_json(), doc, "échantillon", "create", q)
        await c.close()
    run(body())
