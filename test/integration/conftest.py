"""Fixtures: one throwaway PostgreSQL cluster with the extension for the
session, and relay processes started per test by a factory.

The relay's stderr/stdout goes to a file that is attached to the report of
any failing test (and of a failing teardown, e.g. a non-zero exit status).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from rtclient import HS256_SECRET, KEYS, REPO

# CELLCMS_RELAY_BIN runs the suite against another build of the relay (the
# test command uses the AddressSanitizer build: any error or leak makes the
# relay exit non-zero, which fails the test that stopped it).
RELAY_BIN = Path(os.environ.get("CELLCMS_RELAY_BIN",
                                REPO / "build" / "bin" / "cellcms-relay"))
PG_BINDIR = Path(subprocess.check_output(["pg_config", "--bindir"],
                                         text=True).strip())
PG_OWNER = "postgres"

# How the relay is told to verify RS256/ES256 tokens (see its --help).
RS256_FLAGS = ["--jwt-alg", "RS256",
               "--jwt-public-key", str(KEYS / "auth_rs256_public.pem")]
ES256_FLAGS = ["--jwt-alg", "ES256",
               "--jwt-public-key", str(KEYS / "auth_es256_public.pem")]

DOCUMENTS_DDL = (REPO / "scripts" / "sample.sql").read_text() + """
-- a role of the relay's own, so a test can lock the relay out (NOLOGIN)
-- while it keeps committing changes itself
CREATE ROLE relay_it SUPERUSER LOGIN;
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_pg_owner(*cmd, check=True, **kw):
    if os.geteuid() == 0:
        cmd = ("runuser", "-u", PG_OWNER, "--") + cmd
    return subprocess.run(cmd, check=check, capture_output=True, text=True,
                          **kw)


def tail(path, max_chars=30000):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    if len(text) > max_chars:
        text = "...\n" + text[-max_chars:]
    return text


class PgCluster:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="cellcms_it."))
        if os.geteuid() == 0:
            shutil.chown(self.dir, PG_OWNER)
        self.data = self.dir / "data"
        self.logfile = self.dir / "postgres.log"
        self.port = free_port()

    def url(self, db="cellcms", user="postgres"):
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def initdb(self):
        as_pg_owner(str(PG_BINDIR / "initdb"), "-D", str(self.data),
                    "-U", "postgres", "-A", "trust", "--no-sync", "-E",
                    "UTF8", "--locale=C")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "max_connections = 100\n"
                    "fsync = off\n")

    def start(self):
        r = as_pg_owner(str(PG_BINDIR / "pg_ctl"), "-D", str(self.data),
                        "-l", str(self.logfile), "-w", "-t", "60", "start",
                        check=False)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {r.stderr}\n"
                               f"{tail(self.logfile)}")

    def stop(self, mode="fast"):
        as_pg_owner(str(PG_BINDIR / "pg_ctl"), "-D", str(self.data), "-m",
                    mode, "-w", "stop", check=False)

    def connect(self, db="cellcms"):
        conn = psycopg2.connect(host="127.0.0.1", port=self.port,
                                user="postgres", dbname=db,
                                connect_timeout=5)
        conn.autocommit = True
        return conn

    def sql(self, query, params=None, db="cellcms"):
        """Run one statement (autocommit) on a fresh connection; returns
        the rows when it has a result.  A fresh connection each time keeps
        this working across PostgreSQL restarts."""
        conn = self.connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def insert(self, type_, data=None, dataset="production", published=False):
        """Insert one document; returns its id as text."""
        rows = self.sql(
            "INSERT INTO documents (dataset, type, data, published_at) "
            "VALUES (%s, %s, %s::jsonb, CASE WHEN %s THEN now() END) "
            "RETURNING id::text",
            (dataset, type_, json.dumps(data or {}), published))
        return rows[0][0]

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg():
    cluster = PgCluster()
    try:
        cluster.initdb()
        cluster.start()
        cluster.sql("CREATE DATABASE cellcms", db="postgres")
        conn = cluster.connect()
        with conn.cursor() as cur:
            cur.execute(DOCUMENTS_DDL)
        conn.close()
        yield cluster
    finally:
        cluster.destroy()


class Relay:
    def __init__(self, args, logpath, name):
        self.args = args
        self.logpath = logpath
        self.name = name
        self.port = int(args[args.index("--port") + 1])
        self.logfile = open(logpath, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self.logfile,
                                     stderr=subprocess.STDOUT)
        self.returncode = None

    def healthz(self, timeout=2.0):
        """(status, parsed JSON body) of GET /healthz."""
        c = http.client.HTTPConnection("127.0.0.1", self.port,
                                       timeout=timeout)
        try:
            c.request("GET", "/healthz")
            r = c.getresponse()
            body = r.read()
            return r.status, json.loads(body)
        finally:
            c.close()

    def wait_healthy(self, database="connected", timeout=15.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"relay exited with {self.proc.returncode} during "
                    f"startup:\n{self.log()}")
            try:
                last = self.healthz()
                if last[0] == 200 and last[1].get("database") == database:
                    return last
            except (OSError, http.client.HTTPException, ValueError) as e:
                last = e
            time.sleep(0.05)
        raise AssertionError(f"/healthz never reported database={database}: "
                             f"last {last!r}")

    def log(self):
        if not self.logfile.closed:
            self.logfile.flush()
        return tail(self.logpath)

    def rss_kb(self, field="VmRSS"):
        """Resident memory in KiB (field="VmHWM": the peak so far)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.proc.pid}/status")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit status (killed after
        `timeout` seconds: then -9)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.returncode = "hung after SIGTERM (killed)"
        if self.returncode is None:
            self.returncode = self.proc.returncode
        self.logfile.close()
        return self.returncode


def relay_argv(port, pg, secret=HS256_SECRET, flags=(), auth=None,
               db_user="postgres"):
    argv = [str(RELAY_BIN), "--host", "127.0.0.1", "--port", str(port),
            "--database-url", pg.url(user=db_user)]
    if auth is None:
        argv += ["--jwt-secret", secret]
    else:
        argv += list(auth)
    return argv + list(flags)


@pytest.fixture
def relay_factory(request, pg, tmp_path):
    """start(*flags, auth=None, wait=True, db_user="postgres") -> Relay.
    auth replaces the default `--jwt-secret HS256_SECRET` (e.g.
    RS256_FLAGS).  Every relay
    still running at the end is stopped with SIGTERM and must exit 0."""
    if not RELAY_BIN.exists():
        pytest.fail(f"{RELAY_BIN} is not built (run make at the top)")
    relays = []
    request.node._relays = relays

    def start(*flags, auth=None, wait=True, db_user="postgres"):
        port = free_port()
        name = f"relay{len(relays) + 1}"
        r = Relay(relay_argv(port, pg, flags=flags, auth=auth,
                             db_user=db_user),
                  tmp_path / f"{name}.log", name)
        relays.append(r)
        if wait:
            r.wait_healthy()
        return r

    yield start
    bad = []
    for r in relays:
        code = r.stop()
        if code != 0:
            bad.append(f"{r.name}: exit status {code}")
    assert not bad, "relay did not exit 0 on SIGTERM: " + ", ".join(bad)


@pytest.fixture
def relay(relay_factory):
    return relay_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for r in getattr(item, "_relays", []):
            rep.sections.append((f"{r.name} log ({' '.join(r.args[1:])})",
                                 r.log()))
        pg = item.funcargs.get("pg") if hasattr(item, "funcargs") else None
        if pg is not None:
            rep.sections.append(("postgres log (tail)",
                                 tail(pg.logfile, 4000)))
