#!/usr/bin/python3
"""Watch a cellcms-relay: print every message it sends, one JSON per line.

    scripts/watch.py --url ws://127.0.0.1:8080 --token JWT \
        [--dataset production] [--query '*[_type == "post"]'] [--join DOC_ID]

Subscribes to each --query and joins each --join document, then prints what
arrives until Ctrl-C.  Uses Debian's python3-websockets (installed by
`make run`).
"""
import argparse
import asyncio
import json
import sys
import urllib.parse

import websockets


async def watch(args):
    url = "%s/ws?%s" % (args.url.rstrip("/"), urllib.parse.urlencode(
        {"token": args.token, "dataset": args.dataset}))
    async with websockets.connect(url, max_size=None) as ws:
        for query in args.query:
            await ws.send(json.dumps({"type": "subscribe", "query": query}))
        for doc in args.join:
            await ws.send(json.dumps({"type": "presence.join", "documentId": doc}))
        try:
            async for message in ws:
                print(message, flush=True)
        except websockets.ConnectionClosed as e:
            print("closed: %s %s" % (e.code, e.reason), file=sys.stderr)
            return 1
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="ws://127.0.0.1:8080")
    p.add_argument("--token", required=True)
    p.add_argument("--dataset", default="production")
    p.add_argument("--query", action="append", default=[])
    p.add_argument("--join", action="append", default=[])
    args = p.parse_args()
    try:
        return asyncio.run(watch(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
