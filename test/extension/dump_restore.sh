#!/usr/bin/env bash
# Watch state survives pg_dump and restore into a fresh database: the rows of
# cellcms_rt.watched_tables (dumped with the extension, a config table) and
# the triggers (dumped with their tables) come back, and the restored tables
# log and refuse TRUNCATE as before.  Both the custom format (pg_restore) and
# the plain format (psql) are checked.  The change log itself is not dumped.
#
#   test/extension/dump_restore.sh      (needs `make install` first)
#
# Starts its own throwaway cluster; run as root (initdb runs as postgres) or
# as a user that may run initdb.
set -euo pipefail

. "$(dirname "$0")/../../scripts/pgcluster.sh"
work=$(mktemp -d /tmp/cellcms-dump.XXXXXX)
chmod 755 "$work"
chown "$PG_OWNER" "$work" 2>/dev/null || true
cleanup() {
	pgcluster_stop "$work"
	rm -rf "$work"
}
trap cleanup EXIT

pgcluster_start "$work"
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
failures=0
check() { # check NAME EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then
		echo "ok - $1"
	else
		echo "not ok - $1"
		echo "  expected: $2"
		echo "  actual:   $3"
		failures=$((failures + 1))
	fi
}

q -d postgres -c "CREATE DATABASE src"
q -d src >/dev/null <<'SQL'
CREATE EXTENSION cellcms_rt;
CREATE TABLE documents (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	dataset			text NOT NULL DEFAULT 'production',
	type			text NOT NULL,
	data			jsonb NOT NULL DEFAULT '{}',
	published_at	timestamptz
);
CREATE SCHEMA content;
CREATE TABLE content."My Docs" ("Doc Id" text PRIMARY KEY, "Kind" text,
								"Body" jsonb, title text);
SELECT cellcms_rt.watch('documents');
SELECT cellcms_rt.watch('content."My Docs"', id_column => 'Doc Id',
						type_column => 'Kind', data_column => 'Body',
						published_column => NULL, dataset => 'marketing');
INSERT INTO documents (type, data) VALUES ('post', '{"title": "a"}');
INSERT INTO content."My Docs" VALUES ('home', 'page', '{}', 'Home');
SQL

state_query="SELECT w::text FROM cellcms_rt.watched_tables w ORDER BY 1"
trigger_query="SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE NOT t.tgisinternal ORDER BY 1"
src_state=$(q -d src -c "$state_query")
src_triggers=$(q -d src -c "$trigger_query")

pg_dump -Fc -f "$work/src.dump" src
pg_dump -Fp -f "$work/src.sql" src

for format in custom plain; do
	db="dst_$format"
	q -d postgres -c "CREATE DATABASE $db"
	if [ "$format" = custom ]; then
		pg_restore --exit-on-error -d "$db" "$work/src.dump"
	else
		q -d "$db" -f "$work/src.sql" >/dev/null
	fi
	check "$format: watched_tables restored" "$src_state" "$(q -d "$db" -c "$state_query")"
	check "$format: triggers restored" "$src_triggers" "$(q -d "$db" -c "$trigger_query")"
	check "$format: change log not dumped" "0" "$(q -d "$db" -c "SELECT count(*) FROM cellcms_rt.changes")"
	q -d "$db" <<'SQL'
UPDATE documents SET published_at = now();
INSERT INTO content."My Docs" VALUES ('about', 'page', '{"slug": "about"}', 'About');
DELETE FROM content."My Docs" WHERE "Doc Id" = 'home';
SQL
	check "$format: restored tables log their changes" \
		"production|post|publish
marketing|about|create|{\"_id\": \"about\", \"slug\": \"about\", \"_type\": \"page\", \"title\": \"About\"}
marketing|home|delete|{\"_id\": \"home\", \"_type\": \"page\", \"title\": \"Home\"}" \
		"$(q -d "$db" -c "SELECT concat_ws('|', dataset, CASE WHEN dataset = 'production' THEN document_type ELSE document_id END, operation, CASE WHEN dataset = 'marketing' THEN document::text END) FROM cellcms_rt.changes ORDER BY position")"
	check "$format: TRUNCATE still refused" "0A000" \
		"$(q -d "$db" -c "DO \$\$ BEGIN TRUNCATE documents; EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%', SQLSTATE; END \$\$" 2>&1 | sed -n 's/.*NOTICE:  //p')"
	check "$format: unwatch works after restore" "t" "$(q -d "$db" -c "SELECT cellcms_rt.unwatch('documents')")"
done

if [ "$failures" -ne 0 ]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all dump/restore checks passed"
