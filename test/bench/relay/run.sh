#!/usr/bin/env bash
# Benchmarks of cellcms-relay (issue 5): prints one table.
#
#   test/bench/relay/run.sh            full run (about 10 minutes)
#   test/bench/relay/run.sh --smoke    tiny sizes; exits non-zero when any
#                                      event or connection was lost (<= 60 s)
#
# Starts a throwaway PostgreSQL cluster with the cellcms_rt extension
# (installed beforehand: `make -o relay install`), a watched `documents`
# table, then per scenario a fresh cellcms-relay, the load generator
# (build/bin/bench-loadgen) and the writer (build/bin/bench-writer), and stops
# everything at the end.  Loopback only.  See README.md next to this file for
# the scenarios, the method and what limits each figure.
#
# Settings (environment): DURATION (seconds of writing per round, default
# 10), REPEATS (rounds per scenario, 3), S1_CONNS S1_RATE S2_CONNS S2_RATE
# S3_RATES S3_STEP S4_CONNS S4_ROOM S5_CONNS S6_CONNS S6_LEVELS S6_RATE
# S7_CONNS S7_ROOM S7_RATE, SCENARIOS (default "1 2 3 4 5 6 7"), KEEP=1
# keeps the work directory (logs).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin_dir=$root/build/bin

SMOKE=0
if [ "${1:-}" = "--smoke" ]; then
	SMOKE=1
	shift
fi
[ $# -eq 0 ] || { echo "usage: $0 [--smoke]" >&2; exit 2; }

if [ $SMOKE = 1 ]; then
	: "${DURATION:=2}" "${REPEATS:=1}"
	: "${S1_CONNS:=50}" "${S1_RATE:=10}" "${S2_CONNS:=20}" "${S2_RATE:=50}"
	: "${S3_RATES:=50 100}" "${S3_STEP:=1}"
	: "${S4_CONNS:=50}" "${S4_ROOM:=10}" "${S5_CONNS:=50}"
	: "${S6_CONNS:=50}" "${S6_LEVELS:=1 5}" "${S6_RATE:=100}"
	: "${S7_CONNS:=50}" "${S7_ROOM:=10}" "${S7_RATE:=100}"
	: "${QUIET_MS:=500}"
else
	: "${DURATION:=10}" "${REPEATS:=3}"
	: "${S1_CONNS:=10000}" "${S1_RATE:=10}" "${S2_CONNS:=1000}" "${S2_RATE:=100}"
	: "${S3_RATES:=100 150 200 300 400 600 800}" "${S3_STEP:=5}"
	: "${S4_CONNS:=15000}" "${S4_ROOM:=100}" "${S5_CONNS:=10000}"
	: "${S6_CONNS:=1000}" "${S6_LEVELS:=1 10 100}" "${S6_RATE:=1000}"
	: "${S7_CONNS:=5000}" "${S7_ROOM:=20}" "${S7_RATE:=2000}"
	: "${QUIET_MS:=2000}"
fi
: "${SCENARIOS:=1 2 3 4 5 6 7}"
SECRET=cellcms-bench-secret-0123456789abcdef
CLK_TCK=$(getconf CLK_TCK)

make -s -C "$root" relay >/dev/null
ext_dir=$(pg_config --sharedir)/extension
[ -f "$ext_dir/cellcms_rt.control" ] || {
	echo "run.sh: the cellcms_rt extension is not installed (make -o relay install)" >&2
	exit 2
}

# shellcheck source=../../scripts/pgcluster.sh
. "$root/scripts/pgcluster.sh"
work=$(mktemp -d /tmp/cellcms-relay-bench.XXXXXX)
chmod 755 "$work"
chown "$PG_OWNER" "$work" 2>/dev/null || true
relay_pid=""
lg_pid=""
cleanup() {
	stop_loadgen
	stop_relay
	pgcluster_stop "$work"
	if [ "${KEEP:-0}" = 1 ]; then
		echo "work directory kept: $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

log() { echo "[$(date +%T)] $*" >&2; }
fail() { echo "run.sh: $*" >&2; exit 1; }

pgcluster_start "$work" >/dev/null
psql_() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres "$@"; }
psql_ -d postgres -c "ALTER SYSTEM SET synchronous_commit = off" \
	-c "SELECT pg_reload_conf()" -c "CREATE DATABASE cellcms" >/dev/null
psql_ -d cellcms -f "$root/scripts/sample.sql" >/dev/null
db_url=$(pgcluster_url cellcms)
relay_port=$(free_port)

# ---- processes ---------------------------------------------------------

start_relay() {
	"$bin_dir/cellcms-relay" --host 127.0.0.1 --port "$relay_port" \
		--database-url "$db_url" --jwt-secret "$SECRET" --log-level warn \
		--prune-interval 0 "$@" >>"$work/relay.log" 2>&1 &
	relay_pid=$!
	for _ in $(seq 100); do
		if curl -sf "http://127.0.0.1:$relay_port/healthz" 2>/dev/null |
			grep -q '"database":"connected"'; then
			return 0
		fi
		kill -0 "$relay_pid" 2>/dev/null || fail "the relay exited; see $work/relay.log"
		sleep 0.1
	done
	fail "the relay did not get ready; see $work/relay.log"
}

stop_relay() {
	[ -n "$relay_pid" ] || return 0
	kill -TERM "$relay_pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$relay_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$relay_pid" 2>/dev/null || true
	wait "$relay_pid" 2>/dev/null || true
	relay_pid=""
}

relay_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$relay_pid/stat"; }
relay_rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$relay_pid/status"; }

lg_net=0
# start_loadgen CONNS [loadgen options]: waits for `ready`, sets ready_line
start_loadgen() {
	local conns=$1 procs srcs
	shift
	procs=$(((conns + 4999) / 5000))
	srcs=$((conns / 10000 + 1))
	# a fresh 127.0.N.0/24 per run: no source port still in TIME_WAIT
	lg_net=$((lg_net % 250 + 1))
	: >"$work/lg.out"
	"$bin_dir/bench-loadgen" --port "$relay_port" --secret "$SECRET" \
		--conns "$conns" --procs "$procs" --src-net "$lg_net" \
		--src-count "$srcs" --quiet-ms "$QUIET_MS" "$@" \
		>"$work/lg.out" 2>>"$work/lg.err" &
	lg_pid=$!
	for _ in $(seq 1200); do
		if grep -q '^ready' "$work/lg.out"; then
			ready_line=$(grep '^ready' "$work/lg.out")
			return 0
		fi
		kill -0 "$lg_pid" 2>/dev/null || fail "the load generator exited; see $work/lg.err"
		sleep 0.05
	done
	fail "the load generator did not get ready"
}

stop_loadgen() {
	[ -n "$lg_pid" ] || return 0
	kill -TERM "$lg_pid" 2>/dev/null || true
	wait "$lg_pid" 2>/dev/null || true
	lg_pid=""
}

# lg_collect: ends the round (drain), prints its `result` line
lg_collect() {
	local before
	before=$(grep -c '^result' "$work/lg.out" || true)
	kill -USR1 "$lg_pid"
	for _ in $(seq 1800); do
		if [ "$(grep -c '^result' "$work/lg.out" || true)" -gt "$before" ]; then
			grep '^result' "$work/lg.out" | tail -1
			return 0
		fi
		sleep 0.05
	done
	fail "the load generator did not report"
}

# kv LINE KEY
kv() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# ---- figures -----------------------------------------------------------

mkdir -p "$work/m"
lost_total=0
record() { echo "$2" >>"$work/m/$1"; }
# summary KEY [FORMAT]: "median (min–max)" of the recorded values
summary() {
	local f="$work/m/$1" fmt=${2:-%.1f}
	[ -s "$f" ] || { echo "n/a"; return; }
	sort -g "$f" | awk -v fmt="$fmt" '{ v[NR] = $1 } END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		if (NR == 1) printf fmt, m
		else printf fmt " (" fmt "–" fmt ")", m, v[1], v[NR] }'
}
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }

# round NAME EXPECTED_PER_CHANGE WRITER_ARGS...: one measured round of
# changes; records delivered msg/s, latency, CPU per message and losses.
round() {
	local name=$1 per=$2 c0 c1 t0 t1 w res written expected measured relay_s
	shift 2
	t0=$(date +%s.%N)
	c0=$(relay_cpu_ticks)
	w=$("$bin_dir/bench-writer" --url "$db_url" "$@")
	res=$(lg_collect)
	c1=$(relay_cpu_ticks)
	t1=$(date +%s.%N)
	written=$(kv "$w" written)
	expected=$((written * per))
	measured=$(kv "$res" measured)
	relay_s=$(calc "($c1 - $c0) / $CLK_TCK")
	log "$name: $w | $res | relay_cpu_s=$relay_s"
	record "$name.rate" "$(kv "$res" rate)"
	record "$name.p50" "$(kv "$res" p50_ms)"
	record "$name.p99" "$(kv "$res" p99_ms)"
	record "$name.p999" "$(kv "$res" p999_ms)"
	record "$name.lost" $((expected - measured))
	record "$name.relay_us" "$(calc "$relay_s * 1e6 / ($measured > 0 ? $measured : 1)")"
	record "$name.lg_us" "$(calc "$(kv "$res" cpu_s) * 1e6 / ($measured > 0 ? $measured : 1)")"
	# busy share of one core from the first commit to the end of the drain
	# (which includes --quiet-ms of idleness)
	record "$name.relay_cpu" "$(calc "100 * $relay_s / ($t1 - $t0)")"
	record "$name.relay_us_event" "$(calc "$relay_s * 1e6 / ($written > 0 ? $written : 1)")"
	if [ "$measured" -ne "$expected" ]; then
		log "$name: LOST $((expected - measured)) of $expected messages"
		lost_total=$((lost_total + expected - measured))
	fi
	last_round="$res"
	last_relay_s=$relay_s
	last_written=$written
}

fanout() { # NAME CONNS RATE
	local name=$1 conns=$2 rate=$3
	log "$name: $conns connections subscribed to *[_type == \"post\"], $rate changes/s"
	start_relay
	start_loadgen "$conns" --sub '*[_type == "post"]' --window 500 --retry
	log "$name: $ready_line"
	for r in $(seq "$REPEATS"); do
		round "$name" "$conns" --rate "$rate" --duration "$DURATION"
	done
}

scenario_1() {
	fanout S1 "$S1_CONNS" "$S1_RATE"
	stop_loadgen
	stop_relay
}

scenario_2() {
	fanout S2 "$S2_CONNS" "$S2_RATE"
	if [[ " $SCENARIOS " == *" 3 "* ]]; then
		scenario_3_steps
	fi
	stop_loadgen
	stop_relay
}

# S3 on S2's subscribers: raise the rate until delivery falls behind
# (a message lost, or the last delivery more than 1 s after the last
# commit, or p99 over 1 s).
scenario_3_steps() {
	local rate res span ok saved_lost=$lost_total
	log "S3: ceiling on $S2_CONNS subscribers, rates $S3_RATES changes/s"
	for rate in $S3_RATES; do
		round S3.step "$S2_CONNS" --rate "$rate" --duration "$S3_STEP"
		res=$last_round
		span=$(kv "$res" span_s)
		ok=$(awk -v lost="$(tail -1 "$work/m/S3.step.lost")" -v span="$span" \
			-v w="$S3_STEP" -v p99="$(kv "$res" p99_ms)" \
			'BEGIN { print (lost == 0 && span <= w + 1 && p99 <= 1000) ? 1 : 0 }')
		if [ "$ok" = 1 ]; then
			echo "$rate $(kv "$res" rate) $(tail -1 "$work/m/S3.step.relay_us") $(tail -1 "$work/m/S3.step.lg_us")" >"$work/m/S3.best"
		else
			log "S3: delivery fell behind at $rate changes/s"
			echo "$rate" >"$work/m/S3.behind"
			break
		fi
	done
	# in the full run, losses at the step that fell behind are the point of
	# the sweep; the smoke run's sizes are far below any ceiling
	[ $SMOKE = 1 ] || lost_total=$saved_lost
}

scenario_3() {
	# with S2 in the run, S3 reuses its subscribers (see scenario_2)
	[[ " $SCENARIOS " != *" 2 "* ]] || return 0
	local saved=$REPEATS
	REPEATS=0
	fanout S2 "$S2_CONNS" "$S2_RATE"
	REPEATS=$saved
	scenario_3_steps
	stop_loadgen
	stop_relay
}

scenario_4() {
	local rss0 rss1 line rooms=$((S4_CONNS / S4_ROOM))
	[ "$rooms" -ge 1 ] || rooms=1
	log "S4: $S4_CONNS connections in $rooms datasets of $S4_ROOM, each joined to one document"
	for r in $(seq "$REPEATS"); do
		start_relay
		sleep 0.5
		rss0=$(relay_rss_kib)
		start_loadgen "$S4_CONNS" --rooms "$rooms" --types 10 \
			--join 'doc-%t' --window 500 --retry
		line=$ready_line
		sleep 2
		rss1=$(relay_rss_kib)
		log "S4: $line | rss $rss0 -> $rss1 KiB"
		record S4.rss_per_conn "$(calc "($rss1 - $rss0) / $(kv "$line" conns)")"
		record S4.rss "$(calc "$rss1 / 1024")"
		record S4.failed "$(kv "$line" failed)"
		check_ready "$line" "$S4_CONNS"
		stop_loadgen
		stop_relay
	done
}

check_ready() { # LINE CONNS
	local conns
	conns=$(kv "$1" conns)
	if [ "$conns" -ne "$2" ] || [ "$(kv "$1" errors)" -ne 0 ]; then
		log "only $conns of $2 connections got ready (errors $(kv "$1" errors))"
		lost_total=$((lost_total + $2 - conns + $(kv "$1" errors)))
	fi
}

scenario_5() {
	local line window=$(((S5_CONNS + 1) / 2))
	[ "$window" -le 2000 ] || window=2000
	log "S5: storm of $S5_CONNS connections"
	for r in $(seq "$REPEATS"); do
		start_relay
		start_loadgen "$S5_CONNS" --window "$window"
		line=$ready_line
		log "S5: $line"
		record S5.rate "$(kv "$line" rate)"
		record S5.failed "$(kv "$line" failed)"
		check_ready "$line" "$S5_CONNS"
		stop_loadgen
		stop_relay
	done
}

scenario_6() {
	local level types=$((S6_CONNS < 1000 ? S6_CONNS : 1000))
	for level in $S6_LEVELS; do
		log "S6: $S6_CONNS connections x $level subscriptions over $types types, $S6_RATE changes/s"
		start_relay --max-subscriptions "$((level > 100 ? level : 100))"
		start_loadgen "$S6_CONNS" --types "$types" --subs-per-conn "$level" \
			--sub '*[_type == "t%u" && slot == %j]' --window 500 --retry
		log "S6.$level: $ready_line"
		for r in $(seq "$REPEATS"); do
			# every change matches exactly one subscription (j = 0)
			round "S6.$level" 1 --rate "$S6_RATE" --duration "$DURATION" \
				--type 't%d' --types "$types" --slot 0
		done
		stop_loadgen
		stop_relay
	done
}

scenario_7() {
	local rooms=$((S7_CONNS / S7_ROOM)) c0 c1 res expected measured
	[ "$rooms" -ge 1 ] || rooms=1
	log "S7: $S7_CONNS connections in $rooms datasets of $S7_ROOM, $S7_RATE joins/s"
	start_relay
	start_loadgen "$S7_CONNS" --rooms "$rooms" --churn "$S7_RATE" --window 500 --retry
	log "S7: $ready_line"
	for r in $(seq "$REPEATS"); do
		c0=$(relay_cpu_ticks)
		kill -USR2 "$lg_pid"
		sleep "$DURATION"
		res=$(lg_collect)
		c1=$(relay_cpu_ticks)
		measured=$(kv "$res" measured)
		expected=$(($(kv "$res" joins_sent) * (S7_ROOM - 1)))
		log "S7: $res | expected $expected | relay_cpu_s=$(calc "($c1 - $c0) / $CLK_TCK")"
		record S7.p50 "$(kv "$res" p50_ms)"
		record S7.p99 "$(kv "$res" p99_ms)"
		record S7.joins "$(calc "$(kv "$res" joins_sent) / $DURATION")"
		record S7.rate "$(kv "$res" rate)"
		record S7.lost $((expected - measured))
		record S7.relay_us "$(calc "($c1 - $c0) / $CLK_TCK * 1e6 / ($measured > 0 ? $measured : 1)")"
		if [ "$measured" -ne "$expected" ]; then
			log "S7: LOST $((expected - measured)) of $expected presence.join messages"
			lost_total=$((lost_total + expected - measured))
		fi
	done
	stop_loadgen
	stop_relay
}

# ---- run ---------------------------------------------------------------

started=$(date +%s)
log "cores: $(nproc); load average: $(cut -d' ' -f1-3 /proc/loadavg); work: $work"
for s in $SCENARIOS; do
	"scenario_$s"
done
elapsed=$(($(date +%s) - started))

row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; }
echo
echo "cellcms-relay benchmark ($([ $SMOKE = 1 ] && echo smoke || echo full)): $(nproc) cores, $REPEATS x ${DURATION}s rounds, median (min–max); load average at the end $(cut -d' ' -f1-3 /proc/loadavg); ${elapsed}s"
echo
row scenario measure result target
row --- --- --- ---
for s in $SCENARIOS; do
	case $s in
		1 | 2)
			n=$([ "$s" = 1 ] && echo "$S1_CONNS subs, $S1_RATE/s" || echo "$S2_CONNS subs, $S2_RATE/s")
			t=$([ "$s" = 1 ] && echo 50 || echo 5)
			row "S$s fan-out ($n)" "delivered msg/s; lost" "$(summary "S$s.rate" %.0f); $(summary "S$s.lost" %.0f)" "all delivered"
			row "" "latency p50 / p99 / p99.9 ms" "$(summary "S$s.p50") / $(summary "S$s.p99") / $(summary "S$s.p999")" "p99 ≤ $t ms"
			row "" "relay CPU % of one core (round incl. drain); µs per msg" "$(summary "S$s.relay_cpu" %.0f); $(summary "S$s.relay_us" %.2f)" ""
			row "" "load generator µs per msg" "$(summary "S$s.lg_us" %.2f)" ""
			;;
		3)
			if [ -f "$work/m/S3.best" ]; then
				read -r b_rate b_msgs b_relay b_lg <"$work/m/S3.best"
				row "S3 ceiling ($S2_CONNS subs)" "highest sustained delivered msg/s (changes/s)" "$b_msgs ($b_rate)" ""
				row "" "relay µs CPU per msg; load generator µs per msg" "$b_relay; $b_lg" "relay ≤ 2 µs"
			else
				row "S3 ceiling ($S2_CONNS subs)" "highest sustained delivered msg/s" "below the first step" ""
			fi
			row "" "fell behind at changes/s" "$(cat "$work/m/S3.behind" 2>/dev/null || echo "not within $S3_RATES")" ""
			;;
		4)
			row "S4 idle memory ($S4_CONNS conns, presence)" "relay RSS KiB per connection" "$(summary S4.rss_per_conn %.2f)" "≤ 8 KiB"
			row "" "relay RSS MiB; failed connections" "$(summary S4.rss %.0f); $(summary S4.failed %.0f)" ""
			;;
		5)
			row "S5 storm ($S5_CONNS conns)" "connections/s to welcome; failures" "$(summary S5.rate %.0f); $(summary S5.failed %.0f)" "≥ 10,000/s, 0 failures"
			;;
		6)
			first=1
			for level in $S6_LEVELS; do
				row "$([ $first = 1 ] && echo "S6 selective ($S6_CONNS conns, $S6_RATE/s)")" \
					"$((S6_CONNS * level)) subs: relay µs per event; delivered/s; lost" \
					"$(summary "S6.$level.relay_us_event" %.1f); $(summary "S6.$level.rate" %.0f); $(summary "S6.$level.lost" %.0f)" \
					"$([ $first = 1 ] && echo "flat in non-matching subs")"
				first=0
			done
			;;
		7)
			row "S7 presence churn ($S7_CONNS conns, rooms of $S7_ROOM)" "joins/s; broadcasts/s; lost" "$(summary S7.joins %.0f); $(summary S7.rate %.0f); $(summary S7.lost %.0f)" "$S7_RATE joins/s"
			row "" "broadcast latency p50 / p99 ms; relay µs per broadcast" "$(summary S7.p50) / $(summary S7.p99); $(summary S7.relay_us %.2f)" "p99 ≤ 20 ms"
			;;
	esac
done
echo
if [ "$lost_total" -ne 0 ]; then
	echo "LOST: $lost_total messages or connections (see the log above)"
	[ $SMOKE = 1 ] && exit 1
fi
[ $SMOKE = 1 ] && echo "smoke: every event and connection arrived"
exit 0
