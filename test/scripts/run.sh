#!/usr/bin/env bash
# `make run`: the whole system on this machine, with throwaway state under
# tmp/dev: a PostgreSQL cluster with the extension and a watched sample
# `documents` table.  Runs until Ctrl-C, then stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

test/scripts/deps.sh
make -s
make -s install >/dev/null

. test/scripts/pgcluster.sh
dir=$(pgcluster_pick_dir "$repo/tmp/dev")
cleanup()
{
	pgcluster_stop "$dir"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

pgcluster_start "$dir" "${CELLCMS_PGPORT:-}"
psql -q -v ON_ERROR_STOP=1 -d postgres -c 'CREATE DATABASE cellcms'
psql -q -v ON_ERROR_STOP=1 -d cellcms <<'SQL'
CREATE EXTENSION cellcms_rt;
CREATE TABLE documents (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  dataset      text NOT NULL DEFAULT 'production',
  type         text NOT NULL,
  data         jsonb NOT NULL DEFAULT '{}',
  published_at timestamptz
);
SELECT cellcms_rt.watch('documents');
SQL

cat <<EOF

cellcms_rt is running.
  PostgreSQL: $(pgcluster_url cellcms)   (data in $dir, removed on the next run)

Try it from another terminal:
  psql $(pgcluster_url cellcms)
    LISTEN cellcms_rt;
    INSERT INTO documents (type, data) VALUES ('post', '{"title":"Hello"}');
    UPDATE documents SET published_at = now();
    SELECT position, operation, document_id, document FROM cellcms_rt.changes;

Press Ctrl-C to stop.
EOF
while :; do sleep 3600 & wait $!; done
