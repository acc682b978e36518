/*
 * event: one change of a watched document, as the relay routes it.
 *
 * rt_event and its two sources, both checked as strictly: the extension's
 * NOTIFY payload (event_from_notify) and a change log row read by a query
 * (event_from_row).  pg_snapshot and the set D are in snapshot.h.
 *
 * No I/O, no clock.  Not thread-safe.
 */
#ifndef RELAY_EVENT_H
#define RELAY_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Largest NOTIFY payload accepted.  PostgreSQL's own limit (with the default
 * 8 kB block size) is "shorter than 8000 bytes", and the extension keeps its
 * payloads within it.
 */
#define EVENT_PAYLOAD_MAX 8000

/*
 * A change event.  Every pointer member is owned by the event and released
 * by event_free().
 */
typedef struct rt_event
{
	int64_t position;	 /* change log position, >= 1 */
	uint64_t txid;		 /* xid8 of the writing transaction, >= 1 */
	char *dataset;		 /* owned; never NULL */
	char *document_id;	 /* owned; never NULL */
	char *document_type; /* owned; NULL when the type column was NULL */
	char *operation;	 /* owned; create|update|delete|publish|unpublish */
	char *ts;			 /* owned; "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) */
	bool truncated;		 /* payload strings were cut: full values are in the
						  * change log row at `position` */
	json_t *document;	 /* owned reference; NULL until loaded from the log */
} rt_event;

/*
 * Parse the NOTIFY payload payload[0..len) into *out.
 *
 * The payload must be one JSON object with exactly these members (any order,
 * no duplicates; unknown extra members are ignored):
 *   documentId string, documentType string or null, operation one of the five
 *   operations, dataset string, ts string in the format above, position
 *   integer >= 1, txid integer >= 1, and optionally truncated boolean.
 * Strings must be valid UTF-8 without NUL characters.
 *
 * Returns 0 with *out filled (owned by the caller, release with
 * event_free(); document is NULL), or -1 with a message in err[0..errlen)
 * and *out zeroed.  payload is borrowed and need not be NUL-terminated.
 */
int event_from_notify(const char *payload, size_t len, rt_event *out, char *err,
					  size_t errlen);

/*
 * Build an event from column values of a change log row (the catch-up and
 * document queries), checking them as strictly as a payload: position and
 * txid as decimal text, operation and ts as above.  Strings are copied;
 * type may be NULL.  Returns 0, or -1 with err set and *out zeroed.
 */
int event_from_row(const char *position, const char *txid, const char *dataset,
				   const char *document_id, const char *type,
				   const char *operation, const char *ts, rt_event *out,
				   char *err, size_t errlen);

/* True when op is one of create|update|delete|publish|unpublish. */
bool event_operation_valid(const char *op);

/* True when ts has the exact form "YYYY-MM-DDTHH:MM:SS.mmmZ". */
bool event_ts_valid(const char *ts);

/*
 * Release every member and zero *ev.  Safe on a zeroed event and on an event
 * already freed; NULL is a no-op.
 */
void event_free(rt_event *ev);

#endif
