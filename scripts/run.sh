#!/usr/bin/env bash
# `make run`: the whole system on this machine, with throwaway state under
# build/dev: a PostgreSQL cluster with the extension and a watched sample
# `documents` table, and the relay in front of it with a fresh development
# secret.  Prints tokens and commands to try it; runs until Ctrl-C, then
# stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

scripts/deps.sh
make -s
make -s install >/dev/null

. scripts/pgcluster.sh
dir=$(pgcluster_pick_dir "$repo/build/dev")
relay_pid=
cleanup()
{
	if [ -n "$relay_pid" ]; then
		kill -TERM "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
	fi
	pgcluster_stop "$dir"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

pgcluster_start "$dir" "${CELLCMS_PGPORT:-}"
psql -q -v ON_ERROR_STOP=1 -d postgres -c 'CREATE DATABASE cellcms'
psql -q -v ON_ERROR_STOP=1 -d cellcms -f scripts/sample.sql >/dev/null


# The relay: port 8080 unless taken (or CELLCMS_RELAY_PORT says otherwise).
port=${CELLCMS_RELAY_PORT:-8080}
if ! /usr/bin/python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1])))' "$port" 2>/dev/null; then
	echo "port $port is taken; using a free one" >&2
	port=$(free_port)
fi
secret=$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 40)
CELLCMS_RELAY_JWT_SECRET=$secret CELLCMS_RELAY_DATABASE_URL=$(pgcluster_url cellcms) \
	build/bin/cellcms-relay --host 127.0.0.1 --port "$port" &
relay_pid=$!
for _ in $(seq 100); do
	if curl -sf "http://127.0.0.1:$port/healthz" 2>/dev/null | grep -q '"connected"'; then
		break
	fi
	kill -0 "$relay_pid" 2>/dev/null || { echo "the relay did not start" >&2; exit 1; }
	sleep 0.1
done

token()
{
	/usr/bin/python3 -c 'import jwt, sys, time
print(jwt.encode({"sub": sys.argv[2], "name": sys.argv[3],
                  "exp": int(time.time()) + 86400}, sys.argv[1], algorithm="HS256"))' \
		"$secret" "$1" "$2"
}
alice=$(token alice Alice)
bob=$(token bob Bob)

cat <<EOF

cellcms_rt is running.
  PostgreSQL: $(pgcluster_url cellcms)   (data in $dir, removed on the next run)
  relay:      ws://127.0.0.1:$port/ws    (health: http://127.0.0.1:$port/healthz)
  JWT secret for this run: $secret

Development tokens (valid 24 h):
  alice: $alice
  bob:   $bob

Terminal 2, Alice watches posts and edits document doc-1:
  scripts/watch.py --url ws://127.0.0.1:$port --token $alice --query '*[_type == "post"]' --join doc-1

Terminal 3, Bob joins the same document (Alice sees presence.join):
  scripts/watch.py --url ws://127.0.0.1:$port --token $bob --join doc-1

Terminal 4, change documents (Alice sees each mutation):
  psql $(pgcluster_url cellcms)
    INSERT INTO documents (type, data) VALUES ('post', '{"title":"Hello"}');
    UPDATE documents SET published_at = now();
    DELETE FROM documents;
    SELECT position, operation, document_id, document FROM cellcms_rt.changes;

Press Ctrl-C to stop.
EOF
wait "$relay_pid"
