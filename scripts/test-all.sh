#!/usr/bin/env bash
# `make test`: every test of the project, from a clean clone on a fresh
# Debian 12 machine.  Installs what it needs, starts and stops what it needs.
# Each suite prints its own summary; the last line sums the suites up and the
# exit status is non-zero when any suite failed.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

passed=0
failed=0
failed_names=()

suite()
{
	local name=$1
	shift
	echo
	echo "=== $name"
	if "$@"; then
		echo "=== $name: ok"
		passed=$((passed + 1))
	else
		echo "=== $name: FAILED"
		failed=$((failed + 1))
		failed_names+=("$name")
	fi
}

build()
{
	make -s && make -s install >/dev/null
}

# pg_regress and pg_isolation_regress start their own temporary instance
# (--temp-instance); initdb refuses root, so they run as postgres and write
# only under build/.
extension_regress()
{
	mkdir -p build
	chown postgres build
	if ! runuser -u postgres -- make -s -o relay installcheck; then
		for f in build/regress/regression.diffs build/isolation/regression.diffs; do
			[ -f "$f" ] && cat "$f"
		done
		return 1
	fi
}

format_check()
{
	local bad
	bad=$(git ls-files -co --exclude-standard -- '*.c' '*.h' |
		xargs -r clang-format --dry-run --Werror 2>&1 | grep -c 'error:')
	[ "$bad" -eq 0 ] || {
		git ls-files -co --exclude-standard -- '*.c' '*.h' |
			xargs -r clang-format --dry-run --Werror 2>&1 | grep 'error:' | head -20
		return 1
	}
}

groq_conformance()
{
	local subset=$1 max_failures=$2 out
	out=$(test/groq-conformance/groq-conformance --subset "$subset" -j 2 \
		--list-failing -- build/bin/cellcms-groq 2>&1)
	local rc=$?
	echo "$out" | tail -n 40
	local nfail
	nfail=$(echo "$out" | sed -n 's/^[0-9]* passed, \([0-9]*\) failed.*/\1/p' | tail -1)
	[ -n "$nfail" ] || return 1
	if [ "$max_failures" -eq 0 ]; then
		[ "$rc" -eq 0 ]
	else
		[ "$nfail" -le "$max_failures" ]
	fi
}

# The same suite against the relay built with AddressSanitizer and UBSan:
# an error aborts the relay and a leak at exit makes its status non-zero,
# which fails the test that stopped it.  A small quarantine keeps the
# slow-consumer test's memory bound meaningful.
integration_asan()
{
	make -s -C relay VARIANT=asan all &&
		CELLCMS_RELAY_BIN=$repo/build/asan/bin/cellcms-relay \
			ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=8 \
			UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
			test/integration/run.sh
}

client_sdk()
{
	(cd client && npm ci --no-audit --no-fund --loglevel=error && npm test)
}

suite "install dependencies" scripts/deps.sh
suite "build" build
suite "clang-format" format_check
suite "cppcheck" make -s -C relay cppcheck
suite "extension: pg_regress + isolation" extension_regress
suite "extension: pg_dump / restore keeps watched tables" test/extension/dump_restore.sh
suite "GROQ unit tests" make -s -C groq check
suite "GROQ unit tests (ASan/UBSan)" make -s -C groq check-asan
suite "GROQ unit tests (valgrind)" make -s -C groq check-valgrind
suite "relay unit tests" make -s -C relay check
suite "relay unit tests (ASan/UBSan)" make -s -C relay check-asan
suite "relay unit tests (valgrind)" make -s -C relay check-valgrind
suite "relay: pg_listener against PostgreSQL" test/listener/run.sh
suite "relay: integration (PostgreSQL + relay + WebSocket clients)" test/integration/run.sh
suite "relay: integration against the ASan/UBSan build" integration_asan
suite "client SDK (node --test, unit + against the relay)" client_sdk
suite "benchmark smoke (every event and connection arrives)" test/bench/relay/run.sh --smoke
suite "GROQ conformance: core (0 failures)" groq_conformance core 0
# groq-js, Sanity's own implementation, fails 12 of the phase2 cases; the bar
# is to fail fewer.  README.md lists and explains what still fails.
suite "GROQ conformance: phase2 (< 12 failures)" groq_conformance phase2 11

echo
if [ "$failed" -gt 0 ]; then
	echo "failed suites: ${failed_names[*]}"
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
