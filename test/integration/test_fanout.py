"""Fan-out: many subscribers of one query each get every event once, in
order."""

import asyncio

from rtclient import WsClient, make_token, run

CLIENTS = 500
EVENTS = 20
QUERY = '*[_type == "post"]'


def test_fanout_500_subscribers(relay, pg):
    async def body():
        clients = []
        for i in range(0, CLIENTS, 50):
            clients += await asyncio.gather(*(
                WsClient.connect(relay.port, make_token(f"fan{j}"))
                for j in range(i, i + 50)))
        await asyncio.gather(*(c.subscribe(QUERY) for c in clients))
        loop = asyncio.get_running_loop()
        ids = []
        for _ in range(EVENTS):
            ids.append(await loop.run_in_executor(None, pg.insert, "post"))

        async def collect(c):
            got = []
            for _ in range(EVENTS):
                m = await c.recv_json(30)
                assert m["type"] == "mutation" and m["query"] == QUERY, m
                got.append(m["documentId"])
            return got

        results = await asyncio.gather(*(collect(c) for c in clients))
        bad = [i for i, r in enumerate(results) if r != ids]
        assert not bad, (f"{len(bad)} of {CLIENTS} subscribers got a wrong "
                         f"sequence; first: {results[bad[0]]} != {ids}")
        await asyncio.gather(*(c.expect_no_message(1.0) for c in clients))
        await asyncio.gather(*(c.close() for c in clients))
    run(body(), timeout=120)
