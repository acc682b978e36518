"""SPEC §4 Authentication and the greeting (welcome, presence.snapshot)."""

import re
import time

import pytest

from conftest import ES256_FLAGS, RS256_FLAGS
from rtclient import (KEYS, WsClient, make_alg_none_token,
                      make_hs256_with_key_bytes, make_token, run, ws_path)


async def expect_rejected(port, code, token=None, dataset="production",
                          path=None):
    """The handshake completes (101), then the server closes with `code`
    and a short reason, having sent no message."""
    c = await WsClient.open(port, token, dataset, path=path)
    got, reason, msgs = await c.expect_close(5)
    assert msgs == [], f"messages sent before the close: {msgs}"
    assert got == code, f"close code {got} (reason {reason!r}), want {code}"
    assert reason, "close reason is empty"
    assert len(reason.encode()) <= 123
    return reason


def test_welcome_then_snapshot(relay):
    async def body():
        c = await WsClient.open(relay.port, make_token("alice", "Alice"),
                                "production")
        first = await c.recv_json()
        second = await c.recv_json()
        assert set(first) == {"type", "clientId", "userId"}, first
        assert first["type"] == "welcome"
        assert first["userId"] == "alice"
        assert isinstance(first["clientId"], str) and first["clientId"]
        assert second == {"type": "presence.snapshot", "documents": []}
        await c.expect_no_message(0.5)
        await c.close()
    run(body())


def test_client_ids_unique_per_connection(relay):
    async def body():
        tok = make_token("alice")
        clients = [await WsClient.connect(relay.port, tok)
                   for _ in range(10)]
        ids = [c.client_id for c in clients]
        assert len(set(ids)) == 10, ids
        # an id tells nothing of how many came before it (no counter in it)
        assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
        assert all(c.welcome["userId"] == "alice" for c in clients)
        for c in clients:
            await c.close()
    run(body())


def test_missing_token_closed_4001(relay):
    run(expect_rejected(relay.port, 4001, path=ws_path(dataset="production")))


def test_empty_token_closed_4001(relay):
    run(expect_rejected(relay.port, 4001, token=""))


def test_garbage_token_closed_4001(relay):
    run(expect_rejected(relay.port, 4001, token="not.a.jwt"))
    run(expect_rejected(relay.port, 4001, token="x" * 300))


def test_expired_token_closed_4001(relay):
    run(expect_rejected(relay.port, 4001, token=make_token(exp_in=-3600)))


def test_not_yet_valid_token_closed_4001(relay):
    tok = make_token(nbf=int(time.time()) + 3600)
    run(expect_rejected(relay.port, 4001, token=tok))


def test_alg_none_token_closed_4001(relay):
    run(expect_rejected(relay.port, 4001, token=make_alg_none_token()))


def test_bad_signature_closed_4001(relay):
    tok = make_token(secret="another-secret-of-at-least-32-bytes-xx")
    run(expect_rejected(relay.port, 4001, token=tok))
    # a valid token with one signature character changed
    good = make_token()
    head, body, sig = good.split(".")
    sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    run(expect_rejected(relay.port, 4001, token=f"{head}.{body}.{sig}"))


def test_token_without_sub_closed_4001(relay):
    run(expect_rejected(relay.port, 4001, token=make_token(omit=("sub",))))


def test_datasets_claim_excluding_dataset_closed_4003(relay):
    tok = make_token(datasets=["staging"])
    run(expect_rejected(relay.port, 4003, token=tok, dataset="production"))


def test_datasets_claim_including_dataset_accepted(relay):
    async def body():
        tok = make_token("bob", datasets=["staging", "production"])
        c = await WsClient.connect(relay.port, tok, "production")
        assert c.welcome["userId"] == "bob"
        await c.close()
    run(body())


def test_missing_dataset_means_production(relay, pg):
    """Decision: no `dataset` parameter opens the default dataset
    `production` (presence and mutations of production are visible)."""
    async def body():
        prod = await WsClient.connect(relay.port, make_token("p"),
                                      "production")
        await prod.send_json({"type": "presence.join", "documentId": "d1"})
        await prod.roundtrip()
        c = await WsClient.open(relay.port, path=ws_path(make_token("x")))
        await c.recv_type("welcome")
        snap = await c.recv_type("presence.snapshot")
        assert snap["documents"] == [
            {"documentId": "d1", "users": [{"userId": "p", "userName": "p"}]}]
        await c.subscribe('*[_type == "nodataset"]')
        doc = pg.insert("nodataset")
        m = await c.recv_type("mutation")
        assert m["documentId"] == doc
        await prod.close()
        await c.close()
    run(body())


def test_token_expiring_while_open_closed_4001(relay_factory):
    relay = relay_factory("--jwt-leeway", "0")

    async def body():
        c = await WsClient.connect(relay.port, make_token(exp_in=2))
        t0 = time.monotonic()
        code, reason, msgs = await c.expect_close(6)
        assert code == 4001, (code, reason)
        assert reason
        assert time.monotonic() - t0 < 5
        assert msgs == []
    run(body())


def test_leeway_accepts_recently_expired_token(relay_factory):
    """exp is enforced with the configured leeway (default 30 s)."""
    relay = relay_factory()

    async def body():
        c = await WsClient.connect(relay.port, make_token(exp_in=-5))
        await c.close()
        await expect_rejected(relay.port, 4001, token=make_token(exp_in=-60))
    run(body())


def test_rs256_relay(relay_factory):
    relay = relay_factory(auth=RS256_FLAGS)

    async def body():
        c = await WsClient.connect(relay.port,
                                   make_token("rsa", alg="RS256"))
        assert c.welcome["userId"] == "rsa"
        await c.close()
        # algorithm confusion: an HS256 token, even one whose secret is the
        # relay's public key, is refused
        await expect_rejected(relay.port, 4001, token=make_token())
        pub = (KEYS / "auth_rs256_public.pem").read_bytes()
        forged = make_hs256_with_key_bytes(pub)
        await expect_rejected(relay.port, 4001, token=forged)
        # signed with another RSA key
        other = (KEYS / "auth_other_private.pem").read_text()
        await expect_rejected(relay.port, 4001,
                              token=make_token(alg="RS256", key=other))
        await expect_rejected(relay.port, 4001,
                              token=make_alg_none_token())
    run(body())


def test_es256_relay(relay_factory):
    relay = relay_factory(auth=ES256_FLAGS)

    async def body():
        c = await WsClient.connect(relay.port, make_token("ec", alg="ES256"))
        assert c.welcome["userId"] == "ec"
        await c.close()
        await expect_rejected(relay.port, 4001,
                              token=make_token(alg="RS256"))
    run(body())


@pytest.mark.parametrize("claims,ok", [
    ({"iss": "https://issuer.example", "aud": "cellcms"}, True),
    ({"iss": "https://evil.example", "aud": "cellcms"}, False),
    ({"iss": "https://issuer.example", "aud": "other"}, False),
    ({"aud": "cellcms"}, False),
    ({"iss": "https://issuer.example", "aud": ["x", "cellcms"]}, True),
])
def test_issuer_audience_checked_when_configured(relay_factory, claims, ok):
    relay = relay_factory("--jwt-issuer", "https://issuer.example",
                          "--jwt-audience", "cellcms")

    async def body():
        tok = make_token(**claims)
        if ok:
            c = await WsClient.connect(relay.port, tok)
            await c.close()
        else:
            await expect_rejected(relay.port, 4001, token=tok)
    run(body())


def test_token_without_exp_refused_by_default(relay_factory):
    """A token that never expires is good for ever once stolen: refused
    with 4001 unless the operator opts out with --jwt-require-exp 0."""
    strict = relay_factory()
    reason = run(expect_rejected(strict.port, 4001,
                                 token=make_token("alice", exp_in=None)))
    assert "exp" in reason, reason

    lenient = relay_factory("--jwt-require-exp", "0")

    async def accepted():
        c = await WsClient.connect(lenient.port,
                                   make_token("alice", exp_in=None))
        assert c.welcome["userId"] == "alice"
        await c.close()
    run(accepted())
