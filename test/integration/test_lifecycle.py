"""Process behaviour: command line, shutdown on SIGTERM, health endpoint,
secrets kept out of the log."""

import os
import signal
import subprocess

import pytest

from conftest import RELAY_BIN, free_port, relay_argv
from rtclient import (HS256_SECRET, RawWs, WsClient, make_token, run,
                      ws_path)


def clean_env():
    """The environment without the relay's own settings (CELLCMS_*)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("CELLCMS")}


def run_relay(args, timeout=10):
    return subprocess.run([str(RELAY_BIN)] + args, capture_output=True,
                          text=True, timeout=timeout, env=clean_env(),
                          stdin=subprocess.DEVNULL)


def test_help_exits_0():
    r = run_relay(["--help"])
    assert r.returncode == 0, r
    for flag in ("--port", "--database-url", "--jwt-secret"):
        assert flag in r.stdout, f"{flag} missing from --help:\n{r.stdout}"


def assert_usage_error(r):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), \
        f"want one line on stderr, got:\n{r.stderr}"


def test_unknown_flag_exits_2(pg):
    assert_usage_error(run_relay(["--no-such-flag"] +
                                 relay_argv(free_port(), pg)[1:]))


def test_bad_flag_value_exits_2(pg):
    assert_usage_error(run_relay(relay_argv("notaport", pg)[1:]))
    assert_usage_error(run_relay(relay_argv(free_port(), pg)[1:] +
                                 ["--max-queue-bytes", "-5"]))
    assert_usage_error(run_relay(relay_argv(free_port(), pg)[1:] +
                                 ["--ping-interval", "abc"]))


def test_missing_flag_value_exits_2(pg):
    assert_usage_error(run_relay(relay_argv(free_port(), pg)[1:] +
                                 ["--port"]))


def test_missing_jwt_secret_exits_2(pg):
    args = ["--host", "127.0.0.1", "--port", str(free_port()),
            "--database-url", pg.url()]
    assert_usage_error(run_relay(args))


def test_short_jwt_secret_exits_2(pg):
    assert_usage_error(run_relay(relay_argv(free_port(), pg,
                                            secret="too-short")[1:]))


def test_healthz(relay):
    status, body = relay.healthz()
    assert status == 200
    assert body["status"] == "ok" and body["database"] == "connected", body


def test_sigterm_closes_clients_1001_and_exits_0(relay, pg):
    async def body():
        a = await WsClient.connect(relay.port, make_token("a"))
        b = await WsClient.connect(relay.port, make_token("b"))
        c = await WsClient.connect(relay.port, make_token("c"))
        await a.subscribe('*[_type == "post"]')
        await b.send_json({"type": "presence.join", "documentId": "d"})
        assert (await c.recv_json())["type"] == "presence.join"
        relay.signal(signal.SIGTERM)
        for x in (a, b, c):
            code, reason, msgs = await x.expect_close(5)
            assert code == 1001, (code, reason, msgs)
    run(body())
    assert relay.proc.wait(10) == 0


def test_sighup_keeps_the_relay_running(relay):
    async def body():
        a = await WsClient.connect(relay.port, make_token("a"))
        relay.signal(signal.SIGHUP)
        await a.roundtrip()
        status, _ = relay.healthz()
        assert status == 200
        await a.close()
    run(body())


def test_port_in_use_exits_1_with_one_clear_line(pg):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        r = run_relay(relay_argv(s.getsockname()[1], pg)[1:])
    finally:
        s.close()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Address already in use" in r.stderr, r.stderr


def test_max_connections_refuses_with_1013(relay_factory):
    relay = relay_factory("--max-connections", "2")

    async def body():
        a = await WsClient.connect(relay.port, make_token("a"))
        b = await WsClient.connect(relay.port, make_token("b"))
        c = await WsClient.open(relay.port, make_token("c"))
        code, reason, msgs = await c.expect_close(5)
        assert (code, reason, msgs) == (1013, "too many connections", [])
        await a.close()
        # a slot freed is a slot usable again
        d = await WsClient.connect(relay.port, make_token("d"))
        await d.roundtrip()
        for x in (b, d):
            await x.close()
    run(body())


def hold_refused(port, n):
    """n handshakes with a bad token whose 4001 close is never read (so
    never acknowledged); returns the sockets that completed a handshake."""
    held = []
    for _ in range(n):
        try:
            held.append(RawWs(port, ws_path("not-a-token", "production"),
                              timeout=3))
        except (AssertionError, OSError):
            pass  # dropped before the handshake
    return held


def connect_all(port, n):
    async def body():
        good = [await WsClient.connect(port, make_token(f"g{i}"))
                for i in range(n)]
        for c in good:
            await c.roundtrip()
        for c in good:
            await c.close()
    run(body())


def test_refused_sessions_do_not_hold_connection_slots(relay_factory):
    """Peers with a bad token that never acknowledge the 4001 close must
    not keep legitimate clients out with 1013."""
    relay = relay_factory("--max-connections", "5")
    bad = hold_refused(relay.port, 12)
    try:
        assert len(bad) == 12
        connect_all(relay.port, 5)
    finally:
        for raw in bad:
            raw.close()


def test_refused_sessions_are_bounded(relay_factory):
    """Past --max-refused-connections, a refused handshake is dropped at
    once instead of holding a descriptor; accepted clients are unaffected."""
    relay = relay_factory("--max-connections", "5",
                          "--max-refused-connections", "4")
    bad = hold_refused(relay.port, 10)
    try:
        assert len(bad) == 4, f"{len(bad)} refused sessions held"
        connect_all(relay.port, 5)
    finally:
        for raw in bad:
            raw.close()
    assert "--max-refused-connections (4) reached" in relay.log()


@pytest.mark.parametrize("level", ["info", "debug"])
def test_token_and_secret_never_logged(relay_factory, pg, level):
    relay = relay_factory("--log-level", level)
    good = make_token("loggee", "Log Gee")
    expired = make_token("loggee", exp_in=-3600)
    forged = make_token("loggee",
                        secret="another-secret-of-at-least-32-bytes-xx")
    garbage = "garbage-token-marker-5f3a9c"

    async def body():
        c = await WsClient.connect(relay.port, good)
        await c.subscribe('*[_type == "post"]')
        await c.close()
        for tok in (expired, forged, garbage):
            x = await WsClient.open(relay.port, tok, "production")
            code, _, _ = await x.expect_close(5)
            assert code == 4001
    run(body())
    assert relay.stop() == 0
    log = relay.log()
    for name, secret in (("valid token", good), ("expired token", expired),
                         ("forged token", forged),
                         ("garbage token", garbage),
                         ("valid token's signature", good.split(".")[2]),
                         ("HS256 secret", HS256_SECRET)):
        assert secret not in log, f"the {name} appears in the relay log"
