"""Drains NOTIFYs on one channel as fast as they come, like the relay would.

Usage: listener.py DSN CHANNEL COUNTFILE.  Writes the number of notifications
received to COUNTFILE when terminated (SIGTERM).
"""
import select
import signal
import sys

import psycopg2
import psycopg2.extensions

dsn, channel, countfile = sys.argv[1:4]
conn = psycopg2.connect(dsn)
conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
conn.cursor().execute("LISTEN " + channel)
received = 0


def stop(signum, frame):
    with open(countfile, "w") as f:
        f.write("%d\n" % received)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
print("listening", flush=True)
while True:
    if select.select([conn], [], [], 1.0)[0]:
        conn.poll()
        received += len(conn.notifies)
        conn.notifies.clear()
