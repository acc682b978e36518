#!/usr/bin/env bash
# The launcher of isolationtester for pg_isolation_regress (--launcher): runs
# the command it is given and rewrites the two fields of a cellcms_rt payload
# that differ from run to run.  "ts" becomes "<ts>" only when it has the
# promised form (UTC, milliseconds, Z), so a malformed ts still fails the
# diff; each distinct "txid" becomes <txidN> in order of appearance, so the
# output still shows which events share a transaction.  Every other byte of a
# payload is compared verbatim, and a payload over NOTIFY's limit (which
# PostgreSQL would have refused anyway) is flagged.
set -o pipefail
"$@" | perl -pe '
	if (/ with payload "(.*)" from \S+$/ && length($1) > 7999) {
		s/$/ [PAYLOAD OVER 7999 BYTES]/;
	}
	s/"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/"ts":"<ts>"/g;
	s/"txid":(\d+)/"txid":<txid@{[$t{$1} \/\/= ++$n]}>/g;
'
