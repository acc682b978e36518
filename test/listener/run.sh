#!/usr/bin/env bash
# The relay's pg_listener against a real PostgreSQL 15 with the cellcms_rt
# extension: listener-driver prints every delivered event as a JSON line and
# this script checks the lines against the change log with real SQL.
#
# Three drivers run side by side:
#   docs   needs_document = true (every event carries its document)
#   plain  needs_document = false (documents only for truncated payloads)
#   tight  documents, and tiny bounds (3 pending events, pages of 2, loads of
#          2) so that backpressure and paging are exercised; under valgrind
#          when it is installed
# Checks: commit order and fields, documents, a transaction that took its
# position early and committed late, events committed while the listener
# was cut off (NOLOGIN + pg_terminate_backend) and across a PostgreSQL
# restart delivered exactly once, truncated payloads completed from the log,
# invalid and replayed notifications ignored, no duplicate ever, nothing
# lost, clean shutdown.  Prints "N passed, M failed"; exit status 1 on any
# failure.
#
#   BUILD_ROOT=DIR        as for make: the driver is built, and the test's
#                         cluster lives, under DIR instead of build/
#   LISTENER_DRIVER=PROG  a driver built beforehand (e.g. a sanitizer build,
#                         $BUILD_ROOT/asan/bin/listener-driver), used as is
set -uo pipefail
# paths from the environment are relative to where the script was started
[ -z "${BUILD_ROOT:-}" ] || BUILD_ROOT=$(realpath -m -- "$BUILD_ROOT")
[ -z "${LISTENER_DRIVER:-}" ] || LISTENER_DRIVER=$(realpath -m -- "$LISTENER_DRIVER")
cd "$(dirname "$0")/../.." || exit 1
repo=$(pwd)
. scripts/pgcluster.sh

passed=0
failed=0
pids=()
fifo_pid=

ok()
{
	echo "ok - $1"
	passed=$((passed + 1))
}

not_ok()
{
	echo "FAIL - $1"
	failed=$((failed + 1))
}

# check NAME COMMAND...: one assertion
check()
{
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# wait_until SECONDS COMMAND...: poll every 0.1 s
wait_until()
{
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

# ---- build and install ------------------------------------------------

# The extension may still be under construction in extension/: wait for it.
if ! wait_until 1800 test -f extension/cellcms_rt--1.0.sql; then
	echo "extension/cellcms_rt--1.0.sql never appeared" >&2
	exit 1
fi
make -s -o relay install >/dev/null || {
	echo "installing the extension failed" >&2
	exit 1
}
build_root=${BUILD_ROOT:-$repo/build}
if [ -n "${LISTENER_DRIVER:-}" ]; then
	driver=$LISTENER_DRIVER
else
	driver=$build_root/bin/listener-driver
	make -s -C relay BUILD_ROOT="$build_root" listener-driver || exit 1
fi
if [ ! -x "$driver" ]; then
	echo "$driver: no such program" >&2
	exit 1
fi

work=$(pgcluster_pick_dir "$build_root/listener-test")
chmod 755 "$work"
cleanup()
{
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "$fifo_pid" ] && kill "$fifo_pid" 2>/dev/null
	pgcluster_stop "$work"
}
trap cleanup EXIT
pgcluster_start "$work" || exit 1
DB=postgres

q()
{
	psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" "$@"
}

q >/dev/null <<'SQL' || exit 1
CREATE EXTENSION cellcms_rt;
CREATE TABLE documents (
	id text PRIMARY KEY,
	dataset text NOT NULL DEFAULT 'production',
	type text,
	data jsonb NOT NULL DEFAULT '{}',
	published_at timestamptz
);
SELECT cellcms_rt.watch('documents');
-- the relay's own role, so that the test can lock it out
CREATE ROLE relay LOGIN;
GRANT SELECT ON cellcms_rt.changes TO relay;
GRANT EXECUTE ON FUNCTION cellcms_rt.prune(interval) TO relay;
SQL

conninfo="host=127.0.0.1 port=$PGPORT dbname=$DB user=relay"
common=(--advance-ms 200 --reconnect-max-ms 400)
out=$work/out
rm -rf "$out" "$work"/*.fifo
mkdir -p "$out"

start_driver()
{
	local name=$1
	shift
	"$@" "$conninfo" >"$out/$name.jsonl" 2>"$out/$name.log" &
	pids+=($!)
	eval "pid_$name=$!"
}

start_driver docs "$driver" --documents "${common[@]}"
start_driver plain "$driver" "${common[@]}"
tight=("$driver" --documents "${common[@]}" --max-pending 3
	--catchup-batch 2 --document-batch 2)
# valgrind and AddressSanitizer do not mix
if command -v valgrind >/dev/null && ! grep -qa __asan_init "$driver"; then
	# shellcheck disable=SC2054 # the commas belong to one option
	tight=(valgrind -q --error-exitcode=99 --leak-check=full
		--errors-for-leak-kinds=definite,indirect,possible "${tight[@]}")
fi
start_driver tight "${tight[@]}"
drivers=(docs plain tight)

ready()
{
	grep -q 'ready:' "$out/$1.log"
}
for d in "${drivers[@]}"; do
	if ! wait_until 60 ready "$d"; then
		cat "$out/$d.log" >&2
		echo "driver $d never became ready" >&2
		exit 1
	fi
done

# The change log rows the drivers must have delivered, as JSON lines.
expected_json()
{
	q -c "SELECT json_build_object('position', position,
		'txid', txid::text::bigint, 'operation', operation,
		'documentId', document_id, 'documentType', document_type,
		'dataset', dataset,
		'ts', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
		'document', document)
		FROM cellcms_rt.changes ORDER BY position"
}

# delivered NAME POSITION...: every position is in NAME's output
delivered()
{
	local name=$1
	shift
	/usr/bin/python3 - "$out/$name.jsonl" "$@" <<'PY'
import json, sys
got = set()
for line in open(sys.argv[1]):
    got.add(json.loads(line)["position"])
sys.exit(0 if all(int(p) in got for p in sys.argv[2:]) else 1)
PY
}

all_delivered()
{
	local positions d
	positions=$(q -c "SELECT string_agg(position::text, ' ') FROM cellcms_rt.changes")
	for d in "${drivers[@]}"; do
		# shellcheck disable=SC2086
		delivered "$d" $positions || return 1
	done
}

# check_fields NAME [docs|nodocs]: events match the log, field for field
check_fields()
{
	expected_json >"$out/expected.jsonl"
	/usr/bin/python3 - "$out/expected.jsonl" "$out/$1.jsonl" "$2" <<'PY'
import json, sys
exp = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    exp[e["position"]] = e
bad = 0
for line in open(sys.argv[2]):
    g = json.loads(line)
    e = exp.get(g["position"])
    if e is None:
        print("  not in the log:", line.strip()[:200]); bad += 1; continue
    for k in ("txid", "operation", "documentId", "documentType", "dataset", "ts"):
        if g[k] != e[k]:
            print("  position %d: %s is %r, want %r" % (g["position"], k, g[k], e[k])); bad += 1
    if g["truncated"]:
        print("  position %d: still truncated" % g["position"]); bad += 1
    if sys.argv[3] == "docs" and g["document"] != e["document"]:
        print("  position %d: document %r, want %r" % (g["position"], g["document"], e["document"])); bad += 1
    if sys.argv[3] == "nodocs" and g["document"] is not None and len(e["documentId"]) < 4000:
        print("  position %d: unexpected document" % g["position"]); bad += 1
sys.exit(1 if bad else 0)
PY
}

# in_order NAME P1 P2 ...: the positions appear in this order in NAME's output
in_order()
{
	local name=$1
	shift
	/usr/bin/python3 - "$out/$name.jsonl" "$@" <<'PY'
import json, sys
got = [json.loads(l)["position"] for l in open(sys.argv[1])]
want = [int(p) for p in sys.argv[2:]]
idx = [got.index(p) if p in got else -1 for p in want]
ok = all(i >= 0 for i in idx) and idx == sorted(idx)
if not ok:
    print("  order of %s in output: %s" % (want, idx))
sys.exit(0 if ok else 1)
PY
}

# unique NAME: no position delivered twice
unique()
{
	/usr/bin/python3 - "$out/$1.jsonl" <<'PY'
import collections, json, sys
c = collections.Counter(json.loads(l)["position"] for l in open(sys.argv[1]))
dups = [p for p, n in c.items() if n > 1]
if dups:
    print("  delivered more than once:", sorted(dups)[:20])
sys.exit(1 if dups else 0)
PY
}

count_lines()
{
	wc -l <"$out/$1.jsonl"
}

# ---- (1) commit order and fields, (2) documents ----------------------

q <<'SQL'
INSERT INTO documents (id, type, data) VALUES ('d1', 'post', '{"title":"one"}');
UPDATE documents SET data = '{"title":"two","slug":{"current":"x"}}' WHERE id = 'd1';
UPDATE documents SET published_at = now() WHERE id = 'd1';
UPDATE documents SET published_at = NULL WHERE id = 'd1';
BEGIN;
INSERT INTO documents (id, type) VALUES ('d2', 'author'), ('d3', NULL);
INSERT INTO documents (id, dataset, type) VALUES ('d4', 'staging', 'post');
COMMIT;
UPDATE documents SET data = '{"title":"caf\u00e9 \"quoted\"\n"}' WHERE id = 'd2';
DELETE FROM documents WHERE id = 'd1';
SQL
n_expected=$(q -c "SELECT count(*) FROM cellcms_rt.changes")
check "the log has the 9 changes" [ "$n_expected" -eq 9 ]
check "every driver delivered them" wait_until 20 all_delivered
positions=$(q -c "SELECT string_agg(position::text, ' ' ORDER BY position) FROM cellcms_rt.changes")
for d in "${drivers[@]}"; do
	# shellcheck disable=SC2086
	check "$d: commit order" in_order "$d" $positions
done
check "docs: fields and documents match the log" check_fields docs docs
check "tight: fields and documents match the log" check_fields tight docs
check "plain: fields match the log, no documents" check_fields plain nodocs
# field FILE EXPR: EXPR (Python, over `e`) for each event line, one a line
field()
{
	/usr/bin/python3 -c 'import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    v = eval(sys.argv[2])
    if v is not None:
        print(v)' "$@"
}
check "docs: the delete carries the last state" \
	[ "$(field "$out/docs.jsonl" 'e["document"]["title"] if e["operation"] == "delete" else None')" = two ]

# ---- (3) position taken early, commit late ----------------------------

mkfifo "$work/late.fifo"
PGAPPNAME=late psql -X -q -d "$DB" -v ON_ERROR_STOP=1 <"$work/late.fifo" >/dev/null &
fifo_pid=$!
exec 3>"$work/late.fifo"
echo "BEGIN; INSERT INTO documents (id, type) VALUES ('late', 'post');" >&3
idle_in_tx()
{
	[ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1' AND state = 'idle in transaction'")" = 1 ]
}
wait_until 10 idle_in_tx late
q -c "INSERT INTO documents (id, type) VALUES ('early', 'post')"
check "a later transaction is delivered before the open one commits" \
	wait_until 10 delivered docs "$(q -c "SELECT position FROM cellcms_rt.changes WHERE document_id = 'early'")"
echo "COMMIT;" >&3
exec 3>&-
wait "$fifo_pid"
fifo_pid=
late=$(q -c "SELECT position FROM cellcms_rt.changes WHERE document_id = 'late'")
early=$(q -c "SELECT position FROM cellcms_rt.changes WHERE document_id = 'early'")
check "the late transaction has the smaller position" [ "$late" -lt "$early" ]
check "the late commit is delivered" wait_until 10 all_delivered
for d in "${drivers[@]}"; do
	check "$d: delivered in commit order (early, then late)" in_order "$d" "$early" "$late"
done

# ---- (4a) cut off: NOLOGIN + pg_terminate_backend ---------------------

mkfifo "$work/span.fifo"
PGAPPNAME=span psql -X -q -d "$DB" -v ON_ERROR_STOP=1 <"$work/span.fifo" >/dev/null &
fifo_pid=$!
exec 3>"$work/span.fifo"
# opened before the cut, committed during it
echo "BEGIN; INSERT INTO documents (id, type) VALUES ('span', 'post');" >&3
wait_until 10 idle_in_tx span
before=$(for d in "${drivers[@]}"; do count_lines "$d"; done)
q >/dev/null <<'SQL'
ALTER ROLE relay NOLOGIN;
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'relay';
SQL

no_relay()
{
	[ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'relay'")" = 0 ]
}
check "the listener is cut off" wait_until 10 no_relay
q <<'SQL'
INSERT INTO documents (id, type, data)
	SELECT 'cut' || i, 'post', jsonb_build_object('n', i) FROM generate_series(1, 7) i;
UPDATE documents SET data = '{"n":100}' WHERE id = 'cut1';
SQL
echo "COMMIT;" >&3
exec 3>&-
wait "$fifo_pid"
fifo_pid=
# opened during the cut, committed after it
mkfifo "$work/after.fifo"
PGAPPNAME=after psql -X -q -d "$DB" -v ON_ERROR_STOP=1 <"$work/after.fifo" >/dev/null &
fifo_pid=$!
exec 3>"$work/after.fifo"
echo "BEGIN; INSERT INTO documents (id, type) VALUES ('after', 'post');" >&3
wait_until 10 idle_in_tx after
sleep 1
after_cut=$(for d in "${drivers[@]}"; do count_lines "$d"; done)
check "nothing is delivered while cut off" [ "$before" = "$after_cut" ]
check "the driver logs its retries" grep -q 'retrying in' "$out/docs.log"
check "no password or conninfo in the log" bash -c "! grep -q 'user=relay' '$out/docs.log'"
q -c "ALTER ROLE relay LOGIN"
check "everything committed while cut off is delivered after reconnect" \
	wait_until 30 all_delivered
echo "COMMIT;" >&3
exec 3>&-
wait "$fifo_pid"
fifo_pid=
check "the transaction opened during the cut is delivered" wait_until 10 all_delivered
for d in "${drivers[@]}"; do
	check "$d: no duplicates after the cut" unique "$d"
done
check "docs: fields and documents after the cut" check_fields docs docs
check "tight: fields and documents after the cut" check_fields tight docs

# ---- (4b) PostgreSQL restart -----------------------------------------

as_pg_owner "$PG_BINDIR/pg_ctl" -D "$work/data" -l "$work/postgres.log" -m fast -w restart >/dev/null
check "PostgreSQL restarted" [ $? -eq 0 ]
q <<'SQL'
INSERT INTO documents (id, type) SELECT 'restart' || i, 'post' FROM generate_series(1, 5) i;
UPDATE documents SET type = 'page' WHERE id = 'restart1';
SQL
check "events committed across the restart are delivered" wait_until 30 all_delivered
reconnected()
{
	[ "$(grep -c 'ready:' "$out/$1.log")" -ge 3 ]
}
for d in "${drivers[@]}"; do
	check "$d: reconnected after the cut and the restart" wait_until 30 reconnected "$d"
done
q -c "INSERT INTO documents (id, type) VALUES ('post-restart', 'post')"
check "NOTIFY flows again after the restart" wait_until 10 all_delivered

# ---- truncated payloads ----------------------------------------------

q -c "INSERT INTO documents (id, type) VALUES (repeat('x', 9000), repeat('t', 5000))"
check "an event with a truncated payload is delivered" wait_until 10 all_delivered
check "plain: the truncated event got its full strings from the log" \
	[ "$(field "$out/plain.jsonl" '"%d %d %s" % (len(e["documentId"]), len(e["documentType"]), e["truncated"]) if len(e["documentId"]) > 4000 else None')" = "9000 5000 False" ]

# ---- invalid and replayed notifications ------------------------------

n_before=$(count_lines docs)
replay=$(q -c "SELECT format('{\"documentId\":\"d2\",\"documentType\":\"author\",\"operation\":\"create\",\"dataset\":\"production\",\"ts\":\"2025-01-15T12:00:00.000Z\",\"position\":%s,\"txid\":%s}', position, txid) FROM cellcms_rt.changes WHERE document_id = 'd2' ORDER BY position LIMIT 1")
q -c "NOTIFY cellcms_rt, 'not json'" -c "SELECT pg_notify('cellcms_rt', '{\"documentId\":1}')" \
	-c "SELECT pg_notify('cellcms_rt', \$\$$replay\$\$)" >/dev/null
q -c "INSERT INTO documents (id, type) VALUES ('sentinel', 'post')"
check "events after bad notifications are delivered" wait_until 10 all_delivered
check "invalid notifications are logged and skipped" \
	[ "$(grep -c 'ignored a notification' "$out/docs.log")" -ge 2 ]
check "a replayed notification of a delivered change is dropped" \
	[ "$(count_lines docs)" -eq $((n_before + 1)) ]

# ---- (5) never a duplicate, nothing lost ------------------------------

for d in "${drivers[@]}"; do
	check "$d: every position exactly once" unique "$d"
	check "$d: as many events as log rows" \
		[ "$(count_lines "$d")" -eq "$(q -c "SELECT count(*) FROM cellcms_rt.changes")" ]
done
check "docs: all fields and documents" check_fields docs docs
check "tight: all fields and documents" check_fields tight docs
check "plain: all fields" check_fields plain nodocs

# ---- clean shutdown ---------------------------------------------------

for d in "${drivers[@]}"; do
	pid_var=pid_$d
	kill -TERM "${!pid_var}"
	wait "${!pid_var}"
	rc=$?
	check "$d: exits 0 on SIGTERM (no handle left open, no valgrind error)" [ $rc -eq 0 ]
	[ $rc -eq 0 ] || tail -20 "$out/$d.log"
done
pids=()

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
