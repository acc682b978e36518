"""SPEC §4 presence rules, document.updated, and leaves on every kind of
connection end (clean close, TCP drop, ping timeout)."""

import asyncio
import time

from rtclient import RawWs, WsClient, make_token, run, ws_path


def join(doc):
    return {"type": "presence.join", "documentId": doc}


def leave(doc):
    return {"type": "presence.leave", "documentId": doc}


def pmsg(kind, doc, user, name=None):
    return {"type": f"presence.{kind}", "documentId": doc, "userId": user,
            "userName": name if name is not None else user}


def normalize(snapshot_docs):
    """Snapshot documents as {documentId: sorted users}; the order of
    documents and users is not part of the contract."""
    out = {}
    for d in snapshot_docs:
        assert set(d) == {"documentId", "users"}, d
        assert d["documentId"] not in out, f"document listed twice: {d}"
        users = [(u["userId"], u["userName"]) for u in d["users"]]
        assert len(users) == len(set(users)), f"user listed twice: {d}"
        assert users, f"document with no users in the snapshot: {d}"
        out[d["documentId"]] = sorted(users)
    return out


def test_join_broadcast_to_others_not_sender(relay):
    async def body():
        a = await WsClient.connect(relay.port, make_token("alice", "Alice"))
        b = await WsClient.connect(relay.port, make_token("bob", "Bob"))
        c = await WsClient.connect(relay.port, make_token("carol"))
        await a.send_json(join("doc-1"))
        assert await b.recv_json() == pmsg("join", "doc-1", "alice", "Alice")
        assert await c.recv_json() == pmsg("join", "doc-1", "alice", "Alice")
        await a.expect_no_message(0.5)
        await a.send_json(leave("doc-1"))
        assert await b.recv_json() == pmsg("leave", "doc-1", "alice", "Alice")
        assert await c.recv_json() == pmsg("leave", "doc-1", "alice", "Alice")
        await a.expect_no_message(0.3)
        for x in (a, b, c):
            await x.close()
    run(body())


def test_snapshot_reflects_current_presence(relay):
    async def body():
        a = await WsClient.connect(relay.port, make_token("alice", "Alice"))
        b = await WsClient.connect(relay.port, make_token("bob"))  # no name
        await a.send_json(join("d1"))
        assert await b.recv_json() == pmsg("join", "d1", "alice", "Alice")
        await b.send_json(join("d1"))
        await b.send_json(join("d2"))
        await b.send_json(join("d3"))
        await b.send_json(leave("d3"))
        await b.roundtrip()
        assert await a.sync() == [pmsg("join", "d1", "bob"),
                                  pmsg("join", "d2", "bob"),
                                  pmsg("join", "d3", "bob"),
                                  pmsg("leave", "d3", "bob")]
        c = await WsClient.connect(relay.port, make_token("carol"))
        assert normalize(c.snapshot["documents"]) == {
            "d1": [("alice", "Alice"), ("bob", "bob")],
            "d2": [("bob", "bob")],
        }
        await a.close()
        # carol sees alice's leave; a later snapshot no longer has alice
        assert await c.recv_json() == pmsg("leave", "d1", "alice", "Alice")
        d = await WsClient.connect(relay.port, make_token("dave"))
        assert normalize(d.snapshot["documents"]) == {
            "d1": [("bob", "bob")], "d2": [("bob", "bob")]}
        for x in (b, c, d):
            await x.close()
    run(body())


def test_same_user_two_tabs_is_one_presence(relay):
    async def body():
        tok = make_token("ursula", "Ursula")
        tab1 = await WsClient.connect(relay.port, tok)
        tab2 = await WsClient.connect(relay.port, tok)
        obs = await WsClient.connect(relay.port, make_token("observer"))
        await tab1.send_json(join("doc"))
        assert await obs.recv_json() == pmsg("join", "doc", "ursula", "Ursula")
        assert await tab2.recv_json() == pmsg("join", "doc", "ursula",
                                              "Ursula")
        await tab2.send_json(join("doc"))
        await tab2.roundtrip()
        await obs.expect_no_message(0.5)
        # nor is tab1: the user was already present
        await tab1.expect_no_message(0.1)
        x = await WsClient.connect(relay.port, make_token("x"))
        assert normalize(x.snapshot["documents"]) == {
            "doc": [("ursula", "Ursula")]}
        await x.close()
        await tab1.send_json(leave("doc"))
        await tab1.roundtrip()
        await obs.expect_no_message(0.5)
        await tab2.send_json(leave("doc"))
        assert await obs.recv_json() == pmsg("leave", "doc", "ursula",
                                             "Ursula")
        await obs.expect_no_message(0.3)
        for x in (tab1, tab2, obs):
            await x.close()
    run(body())


def test_second_tab_sees_first_tab_join(relay):
    """presence.join goes to every OTHER connection of the dataset,
    including the same user's other tab."""
    async def body():
        tok = make_token("ursula", "Ursula")
        tab1 = await WsClient.connect(relay.port, tok)
        tab2 = await WsClient.connect(relay.port, tok)
        await tab1.send_json(join("doc"))
        assert await tab2.recv_json() == pmsg("join", "doc", "ursula",
                                              "Ursula")
        await tab1.expect_no_message(0.3)
        await tab1.close()
        await tab2.close()
    run(body())


def test_join_twice_and_leave_unjoined_broadcast_nothing(relay):
    async def body():
        a = await WsClient.connect(relay.port, make_token("alice"))
        obs = await WsClient.connect(relay.port, make_token("obs"))
        await a.send_json(leave("never-joined"))
        await a.send_json(join("doc"))
        await a.send_json(join("doc"))
        await a.roundtrip()
        assert await obs.recv_json() == pmsg("join", "doc", "alice")
        await obs.expect_no_message(0.5)
        await a.send_json(leave("doc"))
        await a.send_json(leave("doc"))
        await a.roundtrip()
        assert await obs.recv_json() == pmsg("leave", "doc", "alice")
        await obs.expect_no_message(0.5)
        await a.close()
        await obs.close()
    run(body())


def test_clean_close_broadcasts_leave(relay):
    async def body():
        a = await WsClient.connect(relay.port, make_token("alice", "Alice"))
        obs = await WsClient.connect(relay.port, make_token("obs"))
        await a.send_json(join("d1"))
        await a.send_json(join("d2"))
        got = [await obs.recv_json(), await obs.recv_json()]
        assert sorted(m["documentId"] for m in got) == ["d1", "d2"]
        await a.close()
        got = [await obs.recv_json(), await obs.recv_json()]
        assert sorted(got, key=lambda m: m["documentId"]) == [
            pmsg("leave", "d1", "alice", "Alice"),
            pmsg("leave", "d2", "alice", "Alice")]
        await obs.expect_no_message(0.3)
        await obs.close()
    run(body())


def test_closing_one_of_two_tabs_broadcasts_nothing(relay):
    async def body():
        tok = make_token("ursula")
        tab1 = await WsClient.connect(relay.port, tok)
        tab2 = await WsClient.connect(relay.port, tok)
        obs = await WsClient.connect(relay.port, make_token("obs"))
        await tab1.send_json(join("doc"))
        assert await tab2.recv_json() == pmsg("join", "doc", "ursula")
        await tab2.send_json(join("doc"))
        await tab2.roundtrip()
        assert await obs.recv_json() == pmsg("join", "doc", "ursula")
        await tab1.close()
        await obs.expect_no_message(0.7)
        await tab2.close()
        assert await obs.recv_json() == pmsg("leave", "doc", "ursula")
        await obs.close()
    run(body())


def test_tcp_drop_broadcasts_leave(relay):
    async def body():
        obs = await WsClient.connect(relay.port, make_token("obs"))
        raw = RawWs(relay.port, ws_path(make_token("dropper", "Dropper"),
                                        "production"))
        assert raw.recv_json()["type"] == "welcome"
        assert raw.recv_json()["type"] == "presence.snapshot"
        raw.send_json(join("doc"))
        assert await obs.recv_json() == pmsg("join", "doc", "dropper",
                                             "Dropper")
        raw.abort()  # RST, no close frame
        assert await obs.recv_json(3) == pmsg("leave", "doc", "dropper",
                                              "Dropper")
        await obs.close()
    run(body())


def test_ping_timeout_broadcasts_leave(relay_factory):
    """A peer that stops answering pings is dropped within the ping
    timeout and its presence is cleared; a peer that answers stays."""
    relay = relay_factory("--ping-interval", "1", "--ping-timeout", "1")

    async def body():
        obs = await WsClient.connect(relay.port, make_token("obs"))
        raw = RawWs(relay.port, ws_path(make_token("mute"), "production"))
        assert raw.recv_json()["type"] == "welcome"
        assert raw.recv_json()["type"] == "presence.snapshot"
        raw.send_json(join("doc"))
        assert await obs.recv_json() == pmsg("join", "doc", "mute")
        t0 = time.monotonic()
        # obs (websockets answers pings) must stay; mute must be dropped
        assert await obs.recv_json(6) == pmsg("leave", "doc", "mute")
        assert time.monotonic() - t0 >= 0.9, "dropped before any ping"
        code, _, _ = raw.read_until_close(3)
        assert raw.pings >= 1, "the relay never pinged the silent peer"
        raw.close()
        await obs.expect_no_message(2.5)  # still connected after 2 periods
        await obs.roundtrip()
        await obs.close()
    run(body())


def test_idle_connection_that_answers_pings_stays_open(relay_factory):
    relay = relay_factory("--ping-interval", "1", "--ping-timeout", "1")

    async def body():
        c = await WsClient.connect(relay.port, make_token("idle"))
        await c.expect_no_message(4)
        await c.roundtrip()
        await c.close()
    run(body())


def test_presence_dataset_isolation(relay):
    async def body():
        prod = await WsClient.connect(relay.port, make_token("p"),
                                      "production")
        stag = await WsClient.connect(relay.port, make_token("s"), "staging")
        stag2 = await WsClient.connect(relay.port, make_token("s2"),
                                       "staging")
        await stag.send_json(join("shared-doc"))
        assert await stag2.recv_json() == pmsg("join", "shared-doc", "s")
        await prod.send_json(join("shared-doc"))
        await prod.roundtrip()
        await stag.expect_no_message(0.3)
        await stag2.expect_no_message(0.3)
        await prod.expect_no_message(0.3)
        p2 = await WsClient.connect(relay.port, make_token("p2"),
                                    "production")
        assert normalize(p2.snapshot["documents"]) == {
            "shared-doc": [("p", "p")]}
        s3 = await WsClient.connect(relay.port, make_token("s3"), "staging")
        assert normalize(s3.snapshot["documents"]) == {
            "shared-doc": [("s", "s")]}
        await stag.close()
        assert await stag2.recv_json() == pmsg("leave", "shared-doc", "s")
        await prod.expect_no_message(0.3)
        await p2.expect_no_message(0.1)
        for x in (prod, stag2, p2, s3):
            await x.close()
    run(body())


def test_document_updated_to_joined_connections(relay, pg):
    async def body():
        doc = pg.insert("article", {"title": "t"})
        ed = await WsClient.connect(relay.port, make_token("editor"))
        other = await WsClient.connect(relay.port, make_token("other"))
        await ed.send_json(join(doc))
        await ed.roundtrip()
        assert (await other.recv_json())["type"] == "presence.join"
        steps = [
            ("update", "UPDATE documents SET data = '{\"title\":\"u\"}' "
                       "WHERE id = %s"),
            ("publish", "UPDATE documents SET published_at = now() "
                        "WHERE id = %s"),
            ("unpublish", "UPDATE documents SET published_at = NULL "
                          "WHERE id = %s"),
            ("delete", "DELETE FROM documents WHERE id = %s"),
        ]
        for op, stmt in steps:
            pg.sql(stmt, (doc,))
            m = await ed.recv_json()
            assert set(m) == {"type", "documentId", "operation", "ts"}, m
            assert m["type"] == "document.updated"
            assert m["documentId"] == doc
            assert m["operation"] == op
        await other.expect_no_message(0.5)
        await ed.expect_no_message(0.3)
        await ed.close()
        await other.close()
    run(body())


def test_document_updated_stops_after_leave(relay, pg):
    async def body():
        doc = pg.insert("article")
        ed = await WsClient.connect(relay.port, make_token("editor"))
        await ed.send_json(join(doc))
        await ed.send_json(leave(doc))
        await ed.roundtrip()
        pg.sql("UPDATE documents SET data = '{\"x\":1}' WHERE id = %s",
               (doc,))
        await ed.expect_no_message(1.0)
        await ed.close()
    run(body())


def test_document_updated_respects_dataset(relay, pg):
    """A connection of dataset `staging` that joined a document id of
    `production` hears nothing about the production document."""
    async def body():
        doc = pg.insert("article", dataset="production")
        st = await WsClient.connect(relay.port, make_token("s"), "staging")
        pr = await WsClient.connect(relay.port, make_token("p"),
                                    "production")
        await st.send_json(join(doc))
        await pr.send_json(join(doc))
        await st.roundtrip()
        await pr.roundtrip()
        pg.sql("UPDATE documents SET data = '{\"x\":2}' WHERE id = %s",
               (doc,))
        m = await pr.recv_json()
        assert (m["type"], m["documentId"], m["operation"]) == (
            "document.updated", doc, "update")
        await st.expect_no_message(1.0)
        await st.close()
        await pr.close()
    run(body())


def test_snapshot_and_following_diffs_are_consistent(relay):
    """Clients connecting while presence changes fast get welcome and the
    snapshot first, and snapshot + later join/leave messages add up to the
    real state: nothing missed, nothing twice."""
    async def body():
        spam = await WsClient.connect(relay.port, make_token("spam"))
        docs = [f"doc{i}" for i in range(10)]

        async def churn():
            for _ in range(30):
                for d in docs:
                    await spam.send_json(join(d))
                for d in docs:
                    await spam.send_json(leave(d))
            for d in docs[:4]:
                await spam.send_json(join(d))
            await spam.roundtrip()

        async def newcomer(i):
            await asyncio.sleep(i * 0.01)
            return await WsClient.connect(relay.port, make_token(f"n{i}"))

        results = await asyncio.gather(churn(), *(newcomer(i)
                                                  for i in range(20)))
        for c in results[1:]:
            state = {d for d, users in
                     normalize(c.snapshot["documents"]).items()
                     if ("spam", "spam") in users}
            for m in await c.sync():
                assert m["userId"] == "spam", m
                if m["type"] == "presence.join":
                    assert m["documentId"] not in state, ("join twice", m)
                    state.add(m["documentId"])
                else:
                    assert m["type"] == "presence.leave", m
                    assert m["documentId"] in state, ("leave unjoined", m)
                    state.remove(m["documentId"])
            assert state == set(docs[:4])
            await c.close()
        await spam.close()
    run(body())
