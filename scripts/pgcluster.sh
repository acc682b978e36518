# Sourced, not run: a throwaway PostgreSQL cluster for `make run`, the tests
# and the benchmarks.  initdb refuses root, so the cluster belongs to the
# postgres user and lives in a directory that user can write.
#
#   pgcluster_start DIR [PORT]   initdb + start; sets PGHOST PGPORT PGUSER
#                                (PGCLUSTER_EXTRA_CONF: more postgresql.conf
#                                lines, e.g. for a benchmark)
#   pgcluster_stop DIR           fast shutdown, keeps the files
#   pgcluster_url DB             a postgresql:// URL for the running cluster

PG_BINDIR=$(pg_config --bindir)
PG_OWNER=postgres

as_pg_owner()
{
	if [ "$(id -un)" = "$PG_OWNER" ]; then
		"$@"
	else
		runuser -u "$PG_OWNER" -- "$@"
	fi
}

free_port()
{
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A directory under the repository when the postgres user can reach it (it
# needs search permission on every parent), else one under /tmp.
pgcluster_pick_dir()
{
	local want=$1
	mkdir -p "$want"
	chown "$PG_OWNER" "$want" 2>/dev/null || true
	if as_pg_owner test -w "$want"; then
		echo "$want"
	else
		local d
		d=$(mktemp -d /tmp/cellcms_rt.XXXXXX)
		chown "$PG_OWNER" "$d"
		echo "$d"
	fi
}

pgcluster_start()
{
	local dir=$1 port=${2:-}
	[ -n "$port" ] || port=$(free_port)
	rm -rf "$dir/data"
	as_pg_owner "$PG_BINDIR/initdb" -D "$dir/data" -U postgres -A trust \
		--no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; return 1; }
	cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
${PGCLUSTER_EXTRA_CONF:-}
CONF
	as_pg_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
		-w -t 60 start >/dev/null ||
		{ cat "$dir/postgres.log" >&2; return 1; }
	export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
}

pgcluster_stop()
{
	local dir=$1
	[ -f "$dir/data/postmaster.pid" ] || return 0
	as_pg_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

pgcluster_url()
{
	echo "postgresql://postgres@127.0.0.1:$PGPORT/$1"
}
