#!/usr/bin/env bash
# The relay's integration tests: a throwaway PostgreSQL cluster with the
# cellcms_rt extension, real cellcms-relay processes and real WebSocket
# clients, all on 127.0.0.1.  Assumes `make install` (the extension) and
# `make` (build/bin/cellcms-relay) were run.  Runs as root or as the
# postgres user (initdb refuses root: clusters belong to postgres).
# Extra arguments go to pytest (e.g. -k presence, -x, -v).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONDONTWRITEBYTECODE=1
# Debian's python3: python3-pytest, python3-websockets, python3-psycopg2 and
# python3-jwt are Debian packages; another python3 first on PATH lacks them.
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider test/integration "$@"
