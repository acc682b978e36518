#!/usr/bin/env bash
# Benchmark of the cellcms_rt trigger (prints figures; not a test).
#
# Starts a throwaway cluster (initdb in a temp dir, a free port, fsync on) and
# runs pgbench against four identical tables: (a) no trigger, (b) cellcms_rt,
# (c) a PL/pgSQL trigger doing the same work (document image, change log
# insert, NOTIFY), (d) a PL/pgSQL trigger that only NOTIFYs.  Workloads:
# single-row INSERT, single-row UPDATE, and a 1000-row INSERT in one
# transaction.  One listener drains the channel throughout.  Main runs use
# synchronous_commit=off, variants interleaved in each repeat; medians are
# printed with the ratios.  A reference round with synchronous_commit=on
# follows.
#
#   test/bench/extension/run.sh [--quick]
#   REPEATS=5 DURATION=5 CLIENTS=1 REFERENCE=1 test/bench/extension/run.sh
#
# Needs the extension installed (make install), pgbench and
# /usr/bin/python3 with psycopg2.  Run as root (initdb and pg_ctl then run
# as postgres through runuser) or as a user that may run initdb; clients
# connect over TCP as the cluster's superuser "postgres".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
REPEATS=${REPEATS:-5}
DURATION=${DURATION:-5}
CLIENTS=${CLIENTS:-1}
REFERENCE=${REFERENCE:-1}
UPDATE_ROWS=${UPDATE_ROWS:-10000}
if [ "${1:-}" = "--quick" ]; then
	REPEATS=1
	DURATION=2
	REFERENCE=0
fi

. "$here/../../../scripts/pgcluster.sh"
work=$(mktemp -d /tmp/cellcms-bench.XXXXXX)
chmod 755 "$work"
chown "$PG_OWNER" "$work" 2>/dev/null || true
listener_pid=""
cleanup() {
	if [ -n "$listener_pid" ]; then
		kill "$listener_pid" 2>/dev/null || true
		wait "$listener_pid" 2>/dev/null || true
	fi
	pgcluster_stop "$work"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

PGCLUSTER_EXTRA_CONF="shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
synchronous_commit = off" pgcluster_start "$work"
port=$PGPORT

psql_() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql_ -d postgres -c "CREATE DATABASE bench"
psql_ -d bench -f "$here/schema.sql" >/dev/null

for v in a b c d; do
	cat >"$work/insert_$v.sql" <<SQL
INSERT INTO bench.docs_$v (id, type, data) VALUES (gen_random_uuid()::text, 'post', '{"title": "hello", "n": 1}');
SQL
	cat >"$work/update_$v.sql" <<SQL
\\set id random(1, $UPDATE_ROWS)
UPDATE bench.docs_$v SET data = data || jsonb_build_object('n', :id + random()) WHERE id = 'doc-' || :id;
SQL
	cat >"$work/insert1000_$v.sql" <<SQL
INSERT INTO bench.docs_$v (id, type, data) SELECT gen_random_uuid()::text, 'post', '{"title": "hello", "n": 1}' FROM generate_series(1, 1000);
SQL
done

/usr/bin/python3 "$here/listener.py" "host=127.0.0.1 port=$port user=postgres dbname=bench" cellcms_rt "$work/received" >"$work/listener.out" &
listener_pid=$!
for _ in $(seq 50); do
	grep -q listening "$work/listener.out" 2>/dev/null && break
	sleep 0.1
done

# run WORKLOAD VARIANT SYNC -> prints tps
run() {
	psql_ -d bench -c "SELECT bench.reset($UPDATE_ROWS)" -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
	PGOPTIONS="-c synchronous_commit=$3" pgbench -n -h 127.0.0.1 -p "$port" -U postgres \
		-c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" -f "$work/$1_$2.sql" bench 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A tps
workloads="insert update insert1000"
variants="a b c d"
echo "cellcms_rt benchmark: $REPEATS x ${DURATION}s per cell, $CLIENTS client(s), PostgreSQL $(pg_config --version | awk '{print $2}'), $(nproc) CPUs"
for sync in off on; do
	if [ "$sync" = on ]; then
		[ "$REFERENCE" = 1 ] || break
		reps=1
	else
		reps=$REPEATS
	fi
	for w in $workloads; do
		for r in $(seq "$reps"); do
			# rotate the order so no variant always runs first
			order=$(echo $variants | tr ' ' '\n' | awk -v r="$r" '{ v[NR] = $0 } END { for (i = 0; i < NR; i++) print v[(i + r - 1) % NR + 1] }')
			for v in $order; do
				t=$(run "$w" "$v" "$sync")
				tps[$sync,$w,$v]="${tps[$sync,$w,$v]:-} $t"
				printf '  synchronous_commit=%s %-10s %s run %d: %s tps\n' "$sync" "$w" "$v" "$r" "$t" >&2
			done
		done
	done
done

kill "$listener_pid"
wait "$listener_pid" 2>/dev/null || true
listener_pid=""

report() {
	local sync=$1
	echo
	echo "synchronous_commit = $sync (median TPS; insert1000 = transactions of 1000 rows)"
	printf '%-11s %10s %10s %10s %10s %7s %7s %7s %7s\n' workload "a:none" "b:cellcms" "c:plpgsql" "d:notify" "b/a" "c/a" "b/c" "b/d"
	for w in $workloads; do
		declare -A m
		for v in $variants; do
			m[$v]=$(echo "${tps[$sync,$w,$v]}" | tr ' ' '\n' | sed '/^$/d' | median)
		done
		awk -v w="$w" -v a="${m[a]}" -v b="${m[b]}" -v c="${m[c]}" -v d="${m[d]}" 'BEGIN {
			printf "%-11s %10.0f %10.0f %10.0f %10.0f %7.2f %7.2f %7.2f %7.2f\n", w, a, b, c, d, b / a, c / a, b / c, b / d }'
	done
}
report off
[ "$REFERENCE" = 1 ] && report on
echo
echo "notifications drained by the listener: $(cat "$work/received" 2>/dev/null || echo '?')"
