"""Clients and tokens for the relay's integration tests.

- make_token(): JWTs (HS256 by default; RS256/ES256 with the test keys of
  test/unit/) and hand-made bad ones (alg none).
- WsClient: an asyncio client on the `websockets` library, which answers
  pings by itself like a browser does.  Tests are plain functions that call
  run(coroutine) (pytest-asyncio is not available here).
- RawWs: a blocking client on a plain TCP socket with a hand-written HTTP
  upgrade, for what a well-behaved library will not do: never read, send
  binary/oversized/invalid-UTF-8 frames, never answer pings, drop the TCP
  connection without a close frame.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import struct
import time
import urllib.parse
from pathlib import Path

import jwt
import websockets

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "test" / "unit"

HS256_SECRET = "integration-test-secret-0123456789abcdef"  # 40 bytes
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


def run(coro, timeout=60):
    """Run one async test body with an overall deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# --------------------------------------------------------------- tokens


def make_token(sub="user-1", name=None, exp_in=3600, secret=HS256_SECRET,
               alg="HS256", key=None, omit=(), **claims):
    """A signed JWT.  exp_in: seconds from now (None: no exp).  key: the
    private key PEM for RS256/ES256 (defaults to the test keys).  Extra
    claims (datasets, iss, aud, nbf, ...) are passed through; names in
    `omit` are removed (e.g. omit=("sub",))."""
    now = int(time.time())
    payload = {"sub": sub, "iat": now}
    if name is not None:
        payload["name"] = name
    if exp_in is not None:
        payload["exp"] = now + exp_in
    payload.update(claims)
    for k in omit:
        payload.pop(k, None)
    if alg == "HS256":
        return jwt.encode(payload, secret, algorithm="HS256")
    if key is None:
        key = (KEYS / ("auth_rs256_private.pem" if alg == "RS256"
                       else "auth_es256_private.pem")).read_text()
    return jwt.encode(payload, key, algorithm=alg)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_alg_none_token(sub="user-1", exp_in=3600):
    """An unsigned token (`alg: none`, empty signature)."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": sub,
                              "exp": int(time.time()) + exp_in}).encode())
    return f"{header}.{body}."


def make_hs256_with_key_bytes(key, sub="evil", exp_in=3600):
    """An HS256 token whose HMAC secret is arbitrary bytes, e.g. an RSA
    public key PEM (the classic algorithm-confusion forgery; PyJWT refuses
    to build it, so it is made by hand)."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": sub,
                              "exp": int(time.time()) + exp_in}).encode())
    signing_input = f"{header}.{body}".encode()
    sig = hmac.new(key, signing_input, hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(sig)}"


def ws_path(token=None, dataset=None, **extra):
    q = {}
    if token is not None:
        q["token"] = token
    if dataset is not None:
        q["dataset"] = dataset
    q.update(extra)
    return "/ws" + ("?" + urllib.parse.urlencode(q) if q else "")


# ------------------------------------------------------- asyncio client


class Closed(Exception):
    """The server closed the connection while a message was expected."""

    def __init__(self, code, reason):
        super().__init__(f"connection closed: code={code} reason={reason!r}")
        self.code = code
        self.reason = reason


class WsClient:
    _sync = 0

    def __init__(self, ws):
        self.ws = ws
        self.welcome = None
        self.snapshot = None

    @classmethod
    async def open(cls, port, token=None, dataset=None, path=None):
        """Open the WebSocket (handshake only; nothing is read)."""
        url = f"ws://127.0.0.1:{port}" + (path or ws_path(token, dataset))
        ws = await websockets.connect(url, ping_interval=None,
                                      max_size=None, open_timeout=10,
                                      close_timeout=3, max_queue=None)
        return cls(ws)

    @classmethod
    async def connect(cls, port, token=None, dataset="production", **kw):
        """Open and read the two greeting messages, checking their order."""
        c = await cls.open(port, token, dataset, **kw)
        c.welcome = await c.recv_json()
        assert c.welcome.get("type") == "welcome", c.welcome
        c.snapshot = await c.recv_json()
        assert c.snapshot.get("type") == "presence.snapshot", c.snapshot
        return c

    @property
    def client_id(self):
        return self.welcome["clientId"]

    async def send_json(self, obj):
        await self.ws.send(json.dumps(obj))

    async def send_text(self, text):
        await self.ws.send(text)

    async def recv_json(self, timeout=5.0):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no message within {timeout}s") from None
        except websockets.ConnectionClosed:
            raise Closed(self.ws.close_code, self.ws.close_reason) from None
        assert isinstance(raw, str), f"binary frame from server: {raw!r}"
        return json.loads(raw)

    async def recv_type(self, type_, timeout=5.0):
        """The next message, which must be of type `type_`."""
        m = await self.recv_json(timeout)
        assert m.get("type") == type_, f"expected {type_}, got {m}"
        return m

    async def expect_no_message(self, within=0.5):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), within)
        except asyncio.TimeoutError:
            return
        except websockets.ConnectionClosed:
            raise AssertionError(
                f"connection closed (code={self.ws.close_code} "
                f"reason={self.ws.close_reason!r}) while expecting silence")
        raise AssertionError(f"unexpected message: {raw}")

    async def expect_close(self, timeout=5.0):
        """Read until the server closes; returns (code, reason, messages)
        where messages are the data frames received before the close."""
        msgs = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"server did not close within {timeout}s; got {msgs}")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except asyncio.TimeoutError:
                continue
            except websockets.ConnectionClosed:
                return self.ws.close_code, self.ws.close_reason, msgs
            msgs.append(raw)

    async def subscribe(self, query, params=None, dataset=None):
        msg = {"type": "subscribe", "query": query}
        if params is not None:
            msg["params"] = params
        if dataset is not None:
            msg["dataset"] = dataset
        await self.send_json(msg)
        reply = await self.recv_json()
        assert reply == {"type": "subscribed", "query": query}, reply
        return reply

    async def unsubscribe(self, query):
        await self.send_json({"type": "unsubscribe", "query": query})
        reply = await self.recv_json()
        assert reply == {"type": "unsubscribed", "query": query}, reply

    async def sync(self, timeout=5.0):
        """Wait until the server has processed everything sent so far:
        unsubscribing a query never subscribed has no effect but a reply,
        and a connection's frames are handled in order.  Returns the
        messages that arrived before the reply."""
        WsClient._sync += 1
        q = f'*[_id == "sync-{WsClient._sync}"]'
        await self.send_json({"type": "unsubscribe", "query": q})
        before = []
        while True:
            m = await self.recv_json(timeout)
            if m == {"type": "unsubscribed", "query": q}:
                return before
            before.append(m)

    async def roundtrip(self):
        """sync(), and nothing else may have arrived meanwhile."""
        before = await self.sync()
        assert before == [], f"unexpected messages: {before}"

    async def close(self):
        await self.ws.close()


# ------------------------------------------------------- raw TCP client


def _mask(data, key):
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(
        n, "big")


def encode_frame(opcode, payload, fin=True, masked=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mbit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if masked:
        key = os.urandom(4)
        return head + key + _mask(payload, key)
    return head + payload


class RawWs:
    """A WebSocket client that does exactly what it is told, no more."""

    def __init__(self, port, path, rcvbuf=None, timeout=10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # before connect(), so the advertised window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.pings = 0
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{port}\r\n"
               "Upgrade: websocket\r\n"
               "Connection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"EOF during handshake: {self.buf!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status_line = head.split(b"\r\n", 1)[0].decode()
        assert " 101 " in self.status_line + " ", self.status_line

    def send_frame(self, opcode, payload, fin=True):
        self.sock.sendall(encode_frame(opcode, payload, fin))

    def send_text(self, data):
        self.send_frame(OP_TEXT, data.encode() if isinstance(data, str)
                        else data)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("frame read timed out")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the TCP connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout=5.0):
        """(opcode, payload) of the next frame, fragments not merged.
        Raises socket.timeout or EOFError."""
        deadline = time.monotonic() + timeout
        b0, b1 = self._read_exact(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8, deadline))[0]
        key = self._read_exact(4, deadline) if b1 & 0x80 else None
        payload = self._read_exact(n, deadline)
        if key:
            payload = _mask(payload, key)
        self.last_fin = bool(b0 & 0x80)
        return b0 & 0x0F, payload

    def recv_message(self, timeout=5.0):
        """The next data message (fragments merged; pings counted but NOT
        answered), or ("close", code, reason)."""
        deadline = time.monotonic() + timeout
        parts = []
        while True:
            op, payload = self.recv_frame(max(deadline - time.monotonic(),
                                              0.001))
            if op == OP_PING:
                self.pings += 1
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                code = (struct.unpack("!H", payload[:2])[0]
                        if len(payload) >= 2 else None)
                return ("close", code, payload[2:].decode("utf-8", "replace"))
            parts.append(payload)
            if self.last_fin:
                return ("message", b"".join(parts), None)

    def recv_json(self, timeout=5.0):
        kind, data, reason = self.recv_message(timeout)
        if kind == "close":
            raise Closed(data, reason)
        return json.loads(data)

    def read_until_close(self, timeout=10.0):
        """Drain messages until a close frame or EOF.  Returns
        (close_code or None when the TCP connection ended without a close
        frame, reason, number of data messages read)."""
        deadline = time.monotonic() + timeout
        count = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"connection still open after {timeout}s ({count} msgs)")
            try:
                kind, data, reason = self.recv_message(left)
            except (EOFError, ConnectionResetError):
                return None, None, count
            if kind == "close":
                return data, reason, count
            count += 1

    def abort(self):
        """Drop the TCP connection without a close frame (RST)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
